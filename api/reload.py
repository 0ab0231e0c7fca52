"""Hot reload: the holder of the served cache, and the watcher that swaps in a newly published run.

Requests read ``holder.cache`` once and use that object to the end, so a swap (one assignment) can
never hand a request half of one run and half of another, and the old cache lives on until its last
request is done.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading

from api import store_read
from api.cache import AudienceCache, build_cache
from api.settings import Settings
from store.errors import WorkbenchError

log = logging.getLogger("api.reload")
NO_RUN_HINT = "no published run yet in {db}; build one with `python -m pipeline demo`"


class CacheHolder:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.cache: AudienceCache | None = None
        self.problem = f"the API is starting: loading {settings.db}"
        self._con: sqlite3.Connection | None = None
        self._file: tuple[int, int] | None = None
        self._version: int | None = None
        self._cache_file: tuple[int, int] | None = None  # the file the served cache came from

    def refresh(self, users_in_background: bool = False) -> bool:
        """Load the current run if it is not the one served; True when a new cache was swapped in.
        At startup the user table may load in the background (the audiences are what clients wait
        for); on a reload it loads before the swap, so the swap is whole."""
        con = self._connection()
        version = store_read.data_version(con)
        if version == self._version:
            return False  # nothing was committed since the last look
        run_id = store_read.current_run_id(con)
        if run_id is None:
            self.problem = NO_RUN_HINT.format(db=self.settings.db)
        served = self.cache is not None and (self.cache.run_id, self._cache_file) == (run_id, self._file)
        if run_id is None or served:
            self._version = version
            return False
        fresh = build_cache(str(self.settings.db), run_id, load_users=not users_in_background)
        self.cache = fresh  # the swap
        self._version, self._cache_file = version, self._file
        if users_in_background:
            threading.Thread(target=fresh.users.load, name=f"users-run-{run_id}", daemon=True).start()
        log.info("serving run %s: %s products", run_id, len(fresh.product_ids))
        return True

    def poll(self, users_in_background: bool = False) -> None:
        """refresh() that never raises: a failed look keeps the served run and is retried next time."""
        try:
            self.refresh(users_in_background)
        except Exception as exc:  # noqa: BLE001 - the watcher must outlive any one failed look
            if self.cache is None:
                self.problem = str(exc) if isinstance(exc, WorkbenchError) else f"loading failed: {exc}"
            log.warning("reload of %s failed, still serving run %s: %s", self.settings.db,
                        self.cache.run_id if self.cache else None, exc)
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
            self._con = store_read.connect(self.settings.db)
            self._file = file
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
        self._con, self._file, self._version = None, None, None


async def watch(holder: CacheHolder) -> None:
    """Look for a newly published run every reload_seconds, building it in a thread."""
    while True:
        await asyncio.sleep(holder.settings.reload_seconds)
        await asyncio.to_thread(holder.poll)
