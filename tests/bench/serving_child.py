"""A stand-in web child: serves one connection on the socket it inherited, as bench.web_proc."""

import socket
import sys

if __name__ == "__main__":
    sock = socket.socket(fileno=int(sys.argv[1]))
    sock.listen()
    print("READY", flush=True)
    conn, _ = sock.accept()
    conn.sendall(b"served")
    conn.close()
