"""Hot reload: the holder of the served cache, and the watcher that swaps in a newly published run.

Requests read ``holder.cache`` once and use that object to the end, so a swap (one assignment) can
never hand a request half of one run and half of another, and the old cache lives on until its last
request is done. A look that fails (the database deleted, replaced by a broken file, a snapshot that
cannot be built) keeps serving the last good run and says why on /health.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import sys

from api.cache import AudienceCache, build_cache
from api.settings import Settings
from store import read
from store.errors import WorkbenchError

log = logging.getLogger("api.reload")
# While a look runs in its thread (a snapshot rebuild is seconds of Python and numpy), the GIL goes back to
# the event loop every 1 ms instead of every 5 ms, or requests queue behind it. Only then: kept for the
# worker's life, the short interval cost /recommend ~5% more server CPU per request (a one-off A/B script
# with stress.bench's wrk functions, 5 and 8 interleaved rounds: 96.2 vs 91.5 and 86.0 vs 80.7 us).
LOOK_SWITCH_SECONDS = 0.001
_SWITCH_SECONDS = sys.getswitchinterval()
NO_RUN_HINT = "no published run yet in {db}; build one with `python -m pipeline demo`"


class CacheHolder:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.cache: AudienceCache | None = None
        self.problem = f"the API is starting: loading {settings.db}"  # why there is no cache, or why it is stale
        self._con: sqlite3.Connection | None = None
        self._file: tuple[int, int] | None = None
        self._version: int | None = None
        self._cache_file: tuple[int, int] | None = None  # the file the served cache came from
        self.stale: str | None = None  # while a run is served: why the last look for a newer one failed

    def refresh(self) -> bool:
        """Load the current run if it is not the one served; True when a new cache was swapped in."""
        con = self._connection()
        version = read.data_version(con)
        if version == self._version:
            return False  # nothing was committed since the last look
        run_id = read.current_run_id(con)
        if run_id is None:
            self.problem = NO_RUN_HINT.format(db=self.settings.db)
        served = self.cache is not None and (self.cache.run_id, self._cache_file) == (run_id, self._file)
        if run_id is None or served:
            self._version = version
            return False
        fresh = build_cache(str(self.settings.db), con, run_id)
        self.cache = fresh  # the swap
        self._version, self._cache_file = version, self._file
        log.info("serving run %s: %s products", run_id, len(fresh.product_ids))
        return True

    def poll(self) -> None:
        """refresh() that never raises: a failed look keeps the served run and is retried next time."""
        try:
            self.refresh()
            self.stale = None
        except Exception as exc:  # noqa: BLE001 - the watcher must outlive any one failed look
            reason = str(exc) if isinstance(exc, WorkbenchError) else f"loading failed: {exc}"
            if type(exc) is sqlite3.DatabaseError:  # "not a database", "malformed"; not locked or busy
                reason = str(read.damaged(self.settings.db, exc))
            if self.cache is None:
                self.problem = reason
            else:
                self.stale = f"still serving run {self.cache.run_id}: {reason}"
            log.warning("reload of %s failed, still serving run %s: %s", self.settings.db,
                        self.cache.run_id if self.cache else None, reason)
            self.close()

    def _connection(self) -> sqlite3.Connection:
        """One read-only connection kept open (data_version only compares within a connection),
        opened again when the file is replaced, e.g. by a fresh `pipeline demo`."""
        try:
            stat = os.stat(self.settings.db)
            file = (stat.st_dev, stat.st_ino)
        except FileNotFoundError:
            file = None
        if self._con is None or file != self._file:
            self.close()
            self._con = read.connect(self.settings.db)
            self._file = file
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
        self._con, self._file, self._version = None, None, None


async def look(holder: CacheHolder) -> None:
    """holder.poll in a thread beside the event loop, which gets the GIL back often while it runs."""
    sys.setswitchinterval(LOOK_SWITCH_SECONDS)
    try:
        await asyncio.to_thread(holder.poll)
    finally:
        sys.setswitchinterval(_SWITCH_SECONDS)


async def watch(holder: CacheHolder) -> None:
    """Look for a newly published run every reload_seconds, building it in a thread."""
    while True:
        await asyncio.sleep(holder.settings.reload_seconds)
        await look(holder)
