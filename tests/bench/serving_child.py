"""A stand-in web child: serves one connection on the sockets it inherited, as bench.web_proc
(one READY per socket, as each of its processes prints one)."""

import select
import socket
import sys

if __name__ == "__main__":
    sockets = [socket.socket(fileno=int(fd)) for fd in sys.argv[1:]]
    print("READY\n" * len(sockets), end="", flush=True)
    readable, _, _ = select.select(sockets, [], [], 30)
    conn, _ = readable[0].accept()
    conn.sendall(b"served")
    conn.close()
