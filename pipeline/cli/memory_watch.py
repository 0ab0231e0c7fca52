"""Peak memory of a run's processes together, sampled in a background thread.

With --engine spark most of the memory is not in this process: the JVM (a child of this one) and its
Python workers (children of the JVM), or on a standalone cluster the executors (children of the worker
daemons, not of this process). RSS counts pages shared between forked workers once per process, so the
proportional set size (PSS, each shared page split among its users) is reported too. The peak is also
kept per stage of the run (`stage`, set by the caller as the run moves on), so a bench shows where it is.
"""
from __future__ import annotations

import threading

import psutil

SPARK_MARK = "org.apache.spark"


class MemoryWatch:
    def __init__(self, every: float = 0.5, cluster: bool = False):
        self.every, self.cluster = every, cluster
        self.peak_rss = self.peak_pss = self.peak_processes = 0
        self.stage = ""  # the run's current stage; its samples go to peak_by_stage[stage]
        self.peak_by_stage: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _processes(self) -> list[psutil.Process]:
        me = psutil.Process()
        found = {p.pid: p for p in [me, *me.children(recursive=True)]}
        if self.cluster:  # the cluster's daemons and executors on this machine, and their Python workers
            for proc in psutil.process_iter(["cmdline"]):
                if SPARK_MARK in " ".join(proc.info["cmdline"] or []):
                    for p in [proc, *proc.children(recursive=True)]:
                        found.setdefault(p.pid, p)
        return list(found.values())

    def sample(self) -> None:
        rss = pss = 0
        processes = self._processes()
        for proc in processes:  # a handful of processes, sampled twice a second
            try:
                info = proc.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
        if rss > self.peak_rss:
            self.peak_processes = len(processes)
        self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
        self.peak_by_stage[self.stage] = max(self.peak_by_stage.get(self.stage, 0), rss)

    def enter_stage(self, stage: str) -> None:
        """Samples from now on count for `stage` (the last sample of the previous stage is taken first);
        announcing the current stage again (progress inside it) changes nothing."""
        if stage != self.stage:
            self.sample()
            self.stage = stage

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def __enter__(self) -> MemoryWatch:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
