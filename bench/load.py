"""HTTP load generators: Debian's `wrk` when installed, else an aiohttp loop in its own process
(so the client never shares the server's event loop). Both keep N connections busy for D
seconds (closed loop) and report requests/s and latency percentiles.

Python loop alone: `python -m bench.load BASE_URL PATHS_FILE CONNECTIONS SECONDS` prints JSON.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp


@dataclass
class LoadResult:
    tool: str
    requests: int
    errors: int  # socket errors and non-2xx/3xx answers
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


# --- wrk --------------------------------------------------------------------------------------

WRK_SCRIPT = """
local paths = {%s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n %% #paths) + 1])
end
"""
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"unreadable wrk duration {text!r}")
    return float(match.group(1)) * UNITS_MS[match.group(2)]


def parse_wrk(output: str, seconds: float) -> LoadResult:
    """requests/s, latency percentiles and errors from `wrk --latency` output."""
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    pct = dict(re.findall(r"^\s*(50|75|90|99)%\s+([\d.]+[a-z]+)\s*$", output, re.M))
    if "99" not in pct:
        raise RuntimeError(f"unreadable wrk output:\n{output}")
    max_ms = _ms(re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors += int(non2xx.group(1)) if non2xx else 0
    return LoadResult("wrk", requests, errors, seconds, rps, _ms(pct["50"]), _ms(pct["99"]), max_ms)


# Every request carries one browser session's cookie: the load is one browser reloading the
# pages (the signing page counts a view per browser session, and a reload within the window is
# read-only), not thousands of new browsers each counting a view.
BROWSER_COOKIE = "portico_viewer=bench-one-browser-session"


def run_wrk(
    base: str, paths: list[str], connections: int, seconds: float, workdir: Path
) -> LoadResult:
    script = workdir / f"wrk-{abs(hash(tuple(paths)))}.lua"
    script.write_text(WRK_SCRIPT % ", ".join(json.dumps(p) for p in paths))
    args = [
        "wrk",
        "-t1",  # one client thread: the server, Temporal and the worker share the other core
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "-H",
        f"Cookie: {BROWSER_COOKIE}",
        "--timeout",
        "10s",
        "-s",
        str(script),
        base,
    ]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    return parse_wrk(done.stdout, seconds)


# --- the aiohttp loop -------------------------------------------------------------------------


async def python_loop(base: str, paths: list[str], connections: int, seconds: float) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    counter = 0
    connector = aiohttp.TCPConnector(limit=connections)
    headers = {"Cookie": BROWSER_COOKIE}
    async with aiohttp.ClientSession(base, connector=connector, headers=headers) as session:
        end = time.perf_counter() + seconds

        async def one_connection() -> None:
            nonlocal errors, counter
            while time.perf_counter() < end:
                counter += 1
                path = paths[counter % len(paths)]
                started = time.perf_counter()
                try:
                    async with session.get(path, allow_redirects=False) as response:
                        await response.read()
                        if response.status >= 400:
                            errors += 1
                except aiohttp.ClientError:
                    errors += 1
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(one_connection() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    return LoadResult(
        "python",
        len(latencies),
        errors,
        elapsed,
        len(latencies) / elapsed,
        percentile(latencies, 50),
        percentile(latencies, 99),
        max(latencies, default=0.0),
    )


def run_python(
    base: str, paths: list[str], connections: int, seconds: float, workdir: Path
) -> LoadResult:
    """The aiohttp loop in a child process; its JSON result."""
    paths_file = workdir / f"paths-{abs(hash(tuple(paths)))}.json"
    paths_file.write_text(json.dumps(paths))
    args = [sys.executable, "-m", "bench.load", base, str(paths_file), str(connections)]
    done = subprocess.run([*args, str(seconds)], capture_output=True, text=True, check=True)
    return LoadResult(**json.loads(done.stdout))


def run_load(
    tool: str, base: str, paths: list[str], connections: int, seconds: float, workdir: Path
) -> LoadResult:
    """`tool` is "wrk" or "python"."""
    runner = run_wrk if tool == "wrk" else run_python
    return runner(base, paths, connections, seconds, workdir)


if __name__ == "__main__":
    base_url, paths_path, conns, duration = sys.argv[1:5]
    result = asyncio.run(
        python_loop(base_url, json.loads(Path(paths_path).read_text()), int(conns), float(duration))
    )
    print(json.dumps(asdict(result)))
