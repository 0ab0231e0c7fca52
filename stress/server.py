"""Start and stop the API (or the bare ASGI app) under uvicorn on a free loopback port."""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

HOST = "127.0.0.1"  # load tests never leave this machine
ROOT = Path(__file__).resolve().parents[1]  # servers and locust run from the repository, wherever we are

# As the Procfile serves the API: it has no WebSocket route, so no worker imports a WebSocket library
# (uvicorn's default --ws auto does, in every worker's start).
UVICORN_OPTIONS = ("--ws", "none")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    con = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        con.request("GET", path)
        resp = con.getresponse()
        return resp.status, resp.read()
    finally:
        con.close()


class Server:
    """`with Server("api.main:app", workers=2, db=path) as s:` — s.url, s.startup_seconds, s.worker_rss_mib()."""

    def __init__(self, app: str, workers: int, db: Path | None = None, log: Path | None = None,
                 ready_path: str = "/health", timeout: float = 120.0):
        self.app, self.workers, self.db, self.ready_path, self.timeout = app, workers, db, ready_path, timeout
        self.log = log
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.startup_seconds = float("nan")

    def __enter__(self) -> Server:
        env = {**os.environ, **({"AUDIENCE_DB": str(Path(self.db).resolve())} if self.db else {})}
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", self.app, "--host", HOST, "--port", str(self.port),
             "--workers", str(self.workers), "--no-access-log", "--log-level", "warning", *UVICORN_OPTIONS],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, started: float) -> None:
        while time.perf_counter() - started < self.timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.app} exited with status {self.proc.returncode} before it was ready"
                                   + (f"; see {self.log}" if self.log else ""))
            try:
                if get(self.port, self.ready_path, timeout=1.0)[0] == 200:
                    self.startup_seconds = time.perf_counter() - started
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"{self.app} did not answer 200 on {self.ready_path} within {self.timeout:.0f} s")

    def processes(self) -> list[psutil.Process]:
        """The uvicorn parent and its workers."""
        parent = psutil.Process(self.proc.pid)
        return [parent, *parent.children(recursive=True)]

    def wait_idle(self, timeout: float = 60.0, window: float = 0.5) -> None:
        """Until every worker is idle: the API keeps loading its user table after its first 200."""
        stop = time.perf_counter() + timeout
        while time.perf_counter() < stop:
            before = [sum(p.cpu_times()[:2]) for p in self.worker_processes()]
            time.sleep(window)
            after = [sum(p.cpu_times()[:2]) for p in self.worker_processes()]
            if all(b - a < 0.05 * window for a, b in zip(before, after)):
                return
        raise RuntimeError(f"{self.app} was still busy {timeout:.0f} s after startup")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server's processes have used so far."""
        return sum(sum(p.cpu_times()[:2]) for p in self.processes())

    def worker_processes(self) -> list[psutil.Process]:
        """The worker processes (with --workers 1, uvicorn serves from the parent process itself)."""
        processes = self.processes()
        return [p for p in processes[1:] if "spawn_main" in " ".join(p.cmdline())] or processes[:1]

    def worker_rss_mib(self) -> list[float]:
        return [round(p.memory_info().rss / 2**20, 1) for p in self.worker_processes()]

    def worker_private_mib(self) -> list[float]:
        """Memory only this worker holds (USS): RSS less the pages it shares, e.g. the mapped snapshot."""
        return [round(p.memory_full_info().uss / 2**20, 1) for p in self.worker_processes()]

    def worker_cpu_seconds(self) -> list[float]:
        return [round(sum(p.cpu_times()[:2]), 2) for p in self.worker_processes()]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # the group this object started
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __exit__(self, *exc) -> None:
        self.stop()
