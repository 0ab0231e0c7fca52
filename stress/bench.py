"""`python -m stress bench`: /recommend throughput and latency against the server's own ceiling.

wrk (64 connections, random known products, n in 5, 10, 20) against the API on the current database,
against a bare ASGI app returning constant bytes (stress.bare:app, the ceiling) and against one that
keeps a body per distinct request (stress.bare:varied, what reading varied answers costs), on the same
uvicorn stack and worker count, in alternating rounds after a warm-up (a worker renders each answer on
its first ask and keeps it: the warm-up lets it meet the bench's ~15K (product, n) pairs, as a server
running for a while has met its popular ones); plus the API's startup time to the first 200 on /health
and its RSS per worker. The machine's load average is printed too: other work on it lowers both figures.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from stress.server import Server, get

LUA = """
local products = {%(products)s}
local sizes = {5, 10, 20}
local counter = 0
function setup(thread) counter = counter + 1; thread:set("tid", counter) end
function init(args) math.randomseed(tid * 7919) end
function request()
  local p = products[math.random(#products)]
  return wrk.format("GET", "/recommend/" .. p .. "?n=" .. sizes[math.random(#sizes)])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH {"requests":%%d,"duration_us":%%d,"non2xx":%%d,"errors":%%d,"p50_us":%%d,"p99_us":%%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    errors: int
    requests: int
    cpu_us: float = float("nan")  # server CPU per request: unlike RPS, barely moved by other load


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed; install it with `apt-get update && apt-get install -y wrk`")
    return path


def known_products(port: int, want: int = 5000) -> list[int]:
    found: set[int] = set()
    for _ in range(want // 1000 + 1):
        status, body = get(port, "/products/sample?n=1000")
        if status != 200:
            raise SystemExit(f"the API answered {status} on /products/sample: {body[:200]!r}")
        found.update(json.loads(body)["sample_products"])
    return sorted(found)


def run_wrk(wrk: str, url: str, script: Path, seconds: float, connections: int, threads: int) -> WrkResult:
    out = subprocess.run([wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "-s", str(script), url],
                         capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no result (status {out.returncode}): {out.stderr.strip() or out.stdout[-300:]}")
    data = json.loads(line[6:])
    return WrkResult(rps=data["requests"] / (data["duration_us"] / 1e6), p50_ms=data["p50_us"] / 1000,
                     p99_ms=data["p99_us"] / 1000, non2xx=data["non2xx"], errors=data["errors"],
                     requests=data["requests"])


def measured(wrk: str, server: Server, script: Path, seconds: float, connections: int, threads: int) -> WrkResult:
    before = server.cpu_seconds()
    result = run_wrk(wrk, server.url, script, seconds, connections, threads)
    result.cpu_us = (server.cpu_seconds() - before) / max(result.requests, 1) * 1e6
    return result


def startup_seconds(app: str, db: Path | None, workers: int, starts: int, log: Path) -> list[float]:
    """Seconds from launching uvicorn to the first 200 on /health (the bare app answers any path), per start."""
    times = []
    for _ in range(starts):
        with Server(app, workers=workers, db=db, log=log) as server:
            times.append(server.startup_seconds)
    return times


def bench(db: Path, seconds: float = 10, warmup: float = 10, connections: int = 64, workers: int = 2,
          threads: int = 2, rounds: int = 2, starts: int = 5) -> int:
    wrk = require_wrk()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        script, log = Path(tmp) / "recommend.lua", Path(tmp) / "server.log"
        # one start is noisy (±0.1 s here): several, each alone on the machine, against the bare app's start,
        # which is uvicorn's own share (its import and the spawn of each worker)
        startups = {name: startup_seconds(app, app_db, workers, starts, log)
                    for name, app, app_db in (("API", "api.main:app", db), ("bare ASGI", "stress.bare:app", None))}
        runs: dict[str, list[WrkResult]] = {"/recommend": [], "bare ASGI": [], "varied ASGI": []}
        with Server("api.main:app", workers=workers, db=db, log=log) as api, \
                Server("stress.bare:app", workers=workers, log=log) as bare, \
                Server("stress.bare:varied", workers=workers, log=log) as varied:
            startup_cpu = api.worker_cpu_seconds()
            rss_start = (api.worker_rss_mib(), api.worker_private_mib())
            products = known_products(api.port)
            api.wait_idle()  # the FastAPI app is built in a thread after the first 200: measure once it is in
            script.write_text(LUA % {"products": ",".join(map(str, products))})
            servers = dict(zip(runs, (api, bare, varied)))
            for server in servers.values() if warmup > 0 else ():
                run_wrk(wrk, server.url, script, warmup, connections, threads)
            for _ in range(rounds):  # alternate, so a burst of other load hits all alike
                for name, server in servers.items():
                    runs[name].append(measured(wrk, server, script, seconds, connections, threads))
            rss_end = (api.worker_rss_mib(), api.worker_private_mib())
    print_report(runs, (startups, startup_cpu), rss_start, rss_end, connections, workers, seconds,
                 (load_before, os.getloadavg()[0]))
    bad = sum(r.non2xx + r.errors for results in runs.values() for r in results)
    return 1 if bad else 0


def print_report(runs: dict[str, list[WrkResult]], startup: tuple[dict[str, list[float]], list[float]], rss_start: tuple[list, list],
                 rss_end: tuple[list, list], connections: int, workers: int, seconds: float,
                 load: tuple[float, float]) -> None:
    print(f"wrk, {connections} connections, {len(runs['/recommend'])} alternating rounds of {seconds:g} s, "
          f"uvicorn with {workers} workers, random known products, n in 5/10/20; "
          f"machine load average {load[0]:.2f} before, {load[1]:.2f} after ({os.cpu_count()} cores)")
    print(f"{'round':<6}{'target':<12}{'RPS':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'errors':>8}"
          f"{'server CPU us/request':>23}")
    for i, pair in enumerate(zip(*runs.values()), 1):
        for name, r in zip(runs, pair):
            print(f"{i:<6}{name:<12}{r.rps:>10,.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{r.non2xx:>9}{r.errors:>8}"
                  f"{r.cpu_us:>23.1f}")
    api = {k: sum(getattr(r, k) for r in runs["/recommend"]) / len(runs["/recommend"]) for k in ("rps", "p99_ms")}
    rps = {name: sum(r.rps for r in results) / len(results) for name, results in runs.items()}
    cpu = {name: sum(r.cpu_us for r in results) / len(results) for name, results in runs.items()}
    bare = rps["bare ASGI"]
    print(f"/recommend at {api['rps'] / bare:.0%} of the bare-ASGI ceiling (mean RPS {api['rps']:,.0f} vs "
          f"{bare:,.0f}; target >= 90%), mean p99 {api['p99_ms']:.2f} ms; server CPU per request "
          f"{cpu['/recommend']:.0f} vs {cpu['bare ASGI']:.0f} us ({cpu['bare ASGI'] / cpu['/recommend']:.0%})")
    print(f"the varied-bodies app (a dict of as many answers as the API keeps, nothing else) at "
          f"{rps['varied ASGI'] / bare:.0%} of the ceiling, {cpu['varied ASGI']:.0f} us per request: what reading "
          "varied answers costs any server")
    api_starts, bare_starts = startup[0]["API"], startup[0]["bare ASGI"]
    print(f"API startup to the first 200 on /health: median {statistics.median(api_starts):.2f} s over "
          f"{len(api_starts)} starts ({min(api_starts):.2f}-{max(api_starts):.2f}; target <= 1 s); the bare ASGI app's "
          f"start on the same uvicorn, median {statistics.median(bare_starts):.2f} s "
          f"({min(bare_starts):.2f}-{max(bare_starts):.2f}); CPU per API worker by its first 200 and the build of "
          f"its FastAPI app: {', '.join(map(str, startup[1]))} s")
    for when, (rss, private) in (("after startup", rss_start), ("after the runs", rss_end)):
        print(f"per worker {when}: RSS {', '.join(map(str, rss))} MiB, private {', '.join(map(str, private))} MiB "
              "(target <= 150 MiB private; the mapped snapshot is shared)")
