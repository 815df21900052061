"""A stand-in bench child: READY, then far more stdout than a pipe buffer holds, then a mark."""

import sys
from pathlib import Path

if __name__ == "__main__":
    print("READY", flush=True)
    for n in range(4000):  # ~400 KiB: blocks forever if nobody reads the pipe
        print(f"core warning {n:05d} " + "x" * 80, flush=True)
    Path(sys.argv[1]).write_text("done")
