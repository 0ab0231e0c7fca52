"""Disk retention beside the database: old exports, rejected uploads and logs go after a retention period.

The data folder is the database's folder (data/ by default). The app writes bulk exports to exports/,
uploaded files to uploads/ and the pipeline's output of a Retrain to logs/. An upload is *rejected* when no
succeeded run names it as its source: one that a kept run read stays, so that run can be traced to its data.
Only the writer calls this (under the run lock): at the end of every run, and from `python -m pipeline gc`.
"""
from __future__ import annotations

import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

# What expires: the folder (beside the database) and the name pattern the app gives its files there, so a
# user's own files in a folder that happens to share the name are never touched.
EXPIRING = {"exports": "audiences-run*", "uploads": "[0-9]*-[0-9]*-*", "logs": "retrain-*.log"}
DAY = 86_400


@dataclass
class Removed:
    files: list[Path] = field(default_factory=list)
    bytes: int = 0

    def add(self, path: Path, size: int) -> None:
        self.files.append(path)
        self.bytes += size


def kept_sources(con: sqlite3.Connection) -> set[Path]:
    """Input files of succeeded runs (runs.source is the path the run read, or a description)."""
    rows = con.execute("SELECT source FROM runs WHERE status = 'succeeded' AND source IS NOT NULL").fetchall()
    return {Path(r[0]).resolve() for r in rows}


def expired(folder: Path, days: float, now: float, keep: set[Path]) -> list[Path]:
    """Files (and abandoned demo folders) under data_folder's expiring folders older than `days`."""
    cutoff = now - days * DAY
    found = [p for name, pattern in EXPIRING.items() for p in (folder / name).glob(pattern)
             if p.is_file() and _mtime(p) < cutoff and p.resolve() not in keep]
    # A demo generation killed before its folder was renamed into place leaves a hidden .tmp folder.
    found += [p for p in folder.glob(".demo-*.tmp-*") if p.is_dir() and _mtime(p) < cutoff]
    return found


def _mtime(path: Path) -> float:
    """Modification time; a file removed meanwhile (the app, another gc) is simply not expired."""
    try:
        return path.stat().st_mtime
    except OSError:
        return float("inf")


def remove_expired(folder: Path, days: float, con: sqlite3.Connection, now: float | None = None) -> Removed:
    removed = Removed()
    for path in expired(folder, days, time.time() if now is None else now, kept_sources(con)):
        size = _size(path)
        try:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        except OSError:
            continue  # not ours to force (permissions): left for the next time, not counted as removed
        removed.add(path, size)
    return removed


def folder_size(folder: Path) -> int:
    return _size(folder)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0
