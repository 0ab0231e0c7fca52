"""Retrain: start `python -m pipeline run|demo …` in the background and follow its `runs` row.

The pipeline is the only writer. The app only builds its command line, starts it, reads the runs table
and shows the pipeline's own messages; the pipeline's lock refuses a second concurrent run (exit 2).
"""
from __future__ import annotations

import functools
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from pipeline.data import ingest
from store.errors import InputError
from store.names import utc_now

ROOT = Path(__file__).resolve().parents[1]
UPLOAD_TYPES = ["csv", "gz", "parquet", "pq", "tsv", "txt"]  # what the pipeline's own check accepts or explains
# The pipeline's one input check per file kind, the same function `run` calls, so the app says what the CLI says.
_PIPELINE_CHECKS = {"events": ingest.check_events_file, "catalogue": ingest.check_products_file}
WEIGHT_ORDER = {"event": ("purchased", "cart", "rating", "wishlist", "search_keyword"),
                "component": ("total", "unique", "avg_event", "frequency", "recency")}


PIPELINE_DEFAULT = "the pipeline's choice"  # no --strategy: the pipeline picks


@dataclass(frozen=True)
class Source:
    """Where the events come from: the demo generator (rows, seed) or an events file."""
    kind: str  # "demo" or "file"
    rows: int = 0
    seed: int = 0
    path: str = ""
    products_path: str = ""


@dataclass
class Job:
    """A pipeline process this session started."""
    process: subprocess.Popen
    log: Path
    started_at: str  # UTC ISO, compared with runs.created_at to find its row
    command: list[str]

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None


def _pairs(weights: dict[str, float]) -> str:
    return ",".join(f"{k}={float(v):g}" for k, v in weights.items())


def command(db: str, source: Source, params: dict, publish: bool) -> list[str]:
    """The pipeline command line for this source and these parameters."""
    db_abs = str(Path(db).resolve())
    if source.kind == "demo":
        # No --out: the pipeline keeps demo data beside the database in a folder named by rows and seed,
        # so a demo of other rows never overwrites the files an earlier run read.
        cmd = [sys.executable, "-m", "pipeline", "demo", "--rows", str(source.rows), "--seed", str(source.seed)]
    else:
        cmd = [sys.executable, "-m", "pipeline", "run", "--input", str(Path(source.path).resolve())]
        if source.products_path:
            cmd += ["--products", str(Path(source.products_path).resolve())]
    cmd += ["--db", db_abs, "--depth", str(params["depth"]), "--exclude", params["exclude"],
            "--holdout", f"{params['holdout']:g}", "--bot-limit", str(params["bot_daily_limit"]),
            "--decay-days", f"{params['decay_days']:g}",
            "--event-weights", _pairs(params["event_weights"]),
            "--component-weights", _pairs(params["component_weights"])]
    if params["strategy"] != PIPELINE_DEFAULT:
        cmd += ["--strategy", params["strategy"]]
    if params.get("engine", "inprocess") != "inprocess":  # in-process is the default: nothing to say
        cmd += ["--engine", params["engine"]]
        if params.get("spark_master"):
            cmd += ["--spark-master", params["spark_master"]]
    # With publishing on, the run still publishes only if it passes the publish gates; else it is held.
    return cmd + ([] if publish else ["--no-publish"])


def start(cmd: list[str], log_dir: Path) -> Job:
    """Start the pipeline detached from this script run; its output goes to a log file."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"retrain-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**6}.log"
    started = utc_now()
    with open(log, "wb") as fh:
        process = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    return Job(process, log, started, cmd)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def active_run(runs: list[dict]) -> dict | None:
    """A run the pipeline is working on right now: status 'running' and its process alive."""
    return next((r for r in runs if r["status"] == "running" and pid_alive(r.get("pid"))), None)


def job_run(runs: list[dict], job: Job) -> dict | None:
    """The runs row of this job's process (pids are reused, so also created after the job started)."""
    return next((r for r in runs if r.get("pid") == job.pid and r["created_at"] >= job.started_at), None)


def error_line(log: Path) -> str:
    """The pipeline's own one-line message (it prints 'error: …' and exits non-zero)."""
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()] if log.exists() else []
    errors = [ln for ln in lines if ln.lower().startswith(("error:", "interrupted"))]
    return (errors or lines or ["the pipeline stopped without a message"])[-1].removeprefix("error: ")


def publish(db: str, run_id: int) -> tuple[bool, str]:
    """`python -m pipeline publish`: (succeeded, its one-line answer)."""
    done = subprocess.run([sys.executable, "-m", "pipeline", "publish", "--run", str(run_id),
                           "--db", str(Path(db).resolve())], cwd=ROOT, capture_output=True, text=True, timeout=120)
    text = (done.stdout if done.returncode == 0 else done.stderr).strip().splitlines()
    return done.returncode == 0, (text[-1] if text else f"exit status {done.returncode}").removeprefix("error: ")


def check_input(path: Path, what: str = "events") -> str | None:
    """The pipeline's own check of an events file ("events") or a catalogue ("catalogue"): None if a run
    can read it, else the very line the command line would print."""
    try:
        stat = path.stat()
        key = (stat.st_size, stat.st_mtime_ns)
    except OSError:
        key = (-1, -1)  # missing: the pipeline's check says so
    return _checked(str(path), what, *key)


@functools.lru_cache(maxsize=32)
def _checked(path: str, what: str, size: int, mtime_ns: int) -> str | None:
    """Cached by size and modification time: every rerun of the page checks the chosen file again."""
    try:
        _PIPELINE_CHECKS[what](path)
    except InputError as exc:
        return str(exc)
    return None


def save_upload(name: str, content: bytes, upload_dir: Path) -> Path:
    """Keep an uploaded file under data/uploads/ with a time stamp and a file-system-safe name."""
    upload_dir.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name) or "upload.csv"
    path = upload_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}"
    path.write_bytes(content)
    return path
