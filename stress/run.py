"""`python -m stress run`: the API on the current database under locust, headless, with a report.

Prints RPS, p50/p95/p99 and failures per endpoint, how busy locust itself was (a locust process near
100% of a core means locust, not the API, set the pace), stores a summary row in `stress_runs`, and
fails (exit 1) on any failed request.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

from stress.server import ROOT, Server, get

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def _locust_timespan():
    """locust.util.timespan.parse_timespan, loaded from its file: importing it the usual way runs
    locust/__init__.py, which gevent-patches this whole process (threads, sockets, subprocesses)."""
    spec = importlib.util.find_spec("locust")  # finds the package without importing it
    module_spec = importlib.util.spec_from_file_location(
        "locust_timespan", Path(spec.origin).parent / "util" / "timespan.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.parse_timespan


def parse_duration(text: str) -> float:
    """'300', '90s', '5m', '1h30m' -> seconds, by locust's own parser (the same one its -t flag uses)."""
    try:
        seconds = _locust_timespan()(text.strip().lower())
    except ValueError:
        raise ValueError(f"--duration takes e.g. 300, 90s, 5m or 1h30m, got {text!r}") from None
    if seconds <= 0:
        raise ValueError(f"--duration must be positive, got {text!r}")
    return float(seconds)


def read_stats(path: Path) -> list[dict]:
    """Locust's <prefix>_stats.csv as rows of numbers (the last row is 'Aggregated')."""
    def num(value: str) -> float:
        return float(value) if value not in ("", "N/A") else float("nan")
    with open(path, newline="") as f:
        return [{"name": r["Name"], "requests": int(r["Request Count"]), "failures": int(r["Failure Count"]),
                 "rps": num(r["Requests/s"]), "p50_ms": num(r["50%"]), "p95_ms": num(r["95%"]),
                 "p99_ms": num(r["99%"])} for r in csv.DictReader(f)]


class CpuSampler(threading.Thread):
    """Mean CPU % (of one core) of the locust processes and of the API processes, sampled each second."""

    def __init__(self, locust: psutil.Process, api: list[psutil.Process]):
        super().__init__(daemon=True)
        self.locust_root, self.api = locust, api
        self.samples: dict[str, list[float]] = {"locust_max_process": [], "api_total": [], "machine": []}
        self.stop_event = threading.Event()

    def run(self) -> None:
        procs: dict[int, psutil.Process] = {}
        psutil.cpu_percent()
        while not self.stop_event.wait(1.0):
            try:
                for p in [self.locust_root, *self.locust_root.children(recursive=True), *self.api]:
                    procs.setdefault(p.pid, p)
                usage = {pid: p.cpu_percent() for pid, p in procs.items() if p.is_running()}
            except psutil.Error:
                continue
            api_pids = {p.pid for p in self.api}
            self.samples["locust_max_process"].append(max((v for k, v in usage.items() if k not in api_pids), default=0))
            self.samples["api_total"].append(sum(v for k, v in usage.items() if k in api_pids))
            self.samples["machine"].append(psutil.cpu_percent() * psutil.cpu_count())

    def means(self) -> dict[str, float]:
        # The first samples only prime psutil's counters.
        return {k: round(sum(v[2:]) / max(len(v) - 2, 1), 1) for k, v in self.samples.items()}


class RunWatcher(threading.Thread):
    """The run ids /health reports, once a second, in the order they were served: a hot reload under load
    shows as [1, 2, ...] next to the failure count."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port, self.served = port, []
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(1.0):
            try:
                run_id = json.loads(get(self.port, "/health")[1]).get("run_id")
            except (OSError, ValueError):
                continue
            if not self.served or self.served[-1] != run_id:
                self.served.append(run_id)


def locust_command(url: str, users: int, spawn_rate: float, seconds: float, processes: int, prefix: Path,
                   html: Path) -> list[str]:
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(users),
           "-r", str(spawn_rate), "-t", f"{seconds:g}s", "--host", url, "--csv", str(prefix),
           "--html", str(html), "--only-summary", "--stop-timeout", "10", "--loglevel", "WARNING"]
    return cmd + (["--processes", str(processes)] if processes > 1 else [])


def run_locust(cmd: list[str], api: Server, seconds: float) -> tuple[str, int, dict[str, float]]:
    """Locust's output, exit status and the CPU each side used while it ran."""
    locust = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = CpuSampler(psutil.Process(locust.pid), api.processes())
    sampler.start()
    try:
        output, _ = locust.communicate(timeout=seconds + 300)
    except subprocess.TimeoutExpired:
        locust.kill()  # the process this run started
        output, _ = locust.communicate()
    sampler.stop_event.set()
    return output, locust.returncode, sampler.means()


def run(db: Path, users: int, spawn_rate: float, duration: str, workers: int, locust_processes: int,
        out_dir: Path) -> int:
    seconds = parse_duration(duration)
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    prefix, html, log = (out_dir / f"stress_{stamp}{end}" for end in ("", ".html", "_locust.log"))
    started = datetime.now(UTC).isoformat(timespec="seconds")
    with Server("api.main:app", workers=workers, db=db, log=out_dir / f"stress_{stamp}_api.log") as api:
        run_id = json.loads(get(api.port, "/health")[1])["run_id"]
        print(f"API on {api.url} (run {run_id}, {workers} workers) started in {api.startup_seconds:.2f} s; "
              f"locust: {users} users, spawn rate {spawn_rate:g}/s, {seconds:g} s", flush=True)
        cmd = locust_command(api.url, users, spawn_rate, seconds, locust_processes, prefix, html)
        watcher = RunWatcher(api.port)
        watcher.start()
        output, status, cpu = run_locust(cmd, api, seconds)
        watcher.stop_event.set()
        rss = api.worker_rss_mib()
    print(f"runs served during the test, in order: {watcher.served}")
    log.write_text(output)
    if not Path(f"{prefix}_stats.csv").is_file():
        print(f"locust wrote no statistics (exit status {status}); see {log}", file=sys.stderr)
        return 1
    stats = read_stats(Path(f"{prefix}_stats.csv"))
    total = stats[-1]
    print_report(stats, cpu, rss, locust_processes, prefix, html)
    store_row(db, {
        "run_id": run_id, "started_at": started, "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "users": users, "duration_s": seconds, "requests": total["requests"], "failures": total["failures"],
        "rps": total["rps"], "p50_ms": total["p50_ms"], "p95_ms": total["p95_ms"], "p99_ms": total["p99_ms"],
        "report_html": str(html), "per_endpoint": json.dumps({"endpoints": stats[:-1], "cpu_percent": cpu,
                                                             "api_workers": workers, "rss_mib": rss})})
    if status != 0 and total["failures"] == 0:
        print(f"locust exited with status {status}; see {log}")
    return 1 if total["failures"] or status else 0


def print_report(stats: list[dict], cpu: dict[str, float], rss: list[float], locust_processes: int,
                 prefix: Path, html: Path) -> None:
    print(f"{'endpoint':<22}{'requests':>10}{'failures':>9}{'RPS':>9}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}")
    for r in stats:
        print(f"{r['name']:<22}{r['requests']:>10,}{r['failures']:>9,}{r['rps']:>9,.1f}"
              f"{r['p50_ms']:>8.0f}{r['p95_ms']:>8.0f}{r['p99_ms']:>8.0f}")
    busiest = cpu["locust_max_process"]
    verdict = ("locust was the bottleneck (its busiest process near a full core)" if busiest >= 90
               else "locust was not the bottleneck")
    print(f"CPU (% of one core): busiest locust process {busiest}, API processes {cpu['api_total']}, "
          f"machine {cpu['machine']} of {psutil.cpu_count() * 100}; {verdict} "
          f"({locust_processes} locust process{'es' if locust_processes > 1 else ''})")
    print(f"API RSS per worker at the end: {', '.join(map(str, rss))} MiB")
    print(f"reports: {prefix}_stats.csv, {html}")


def store_row(db: Path, row: dict) -> None:
    """Through the single writer, waiting for a pipeline run that holds the lock to finish."""
    from store import writer
    from store.errors import RunInProgressError
    deadline = time.monotonic() + 600
    while True:
        try:
            with writer.RunLock(db):
                stress_id = writer.add_stress_run(writer.connect(db), row)
            print(f"stored as stress_runs.stress_id = {stress_id}")
            return
        except RunInProgressError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)
