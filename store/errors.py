"""One exception class per kind of failure; the CLI maps each to one line on stderr and exit 2."""


class WorkbenchError(Exception):
    """A failure the user can fix; its message is one line saying what and how."""


class InputError(WorkbenchError):
    """The input data (events file or product catalogue) cannot be used."""


class RunInProgressError(WorkbenchError):
    """Another run holds the writer lock: one run at a time."""


class RunNotFoundError(WorkbenchError):
    """A run id that does not exist, or a run that cannot be used for what was asked."""


class NoDatabaseError(WorkbenchError):
    """The database file does not exist yet."""


class NoPublishedRunError(WorkbenchError):
    """The database has no published run yet."""


class DiskFullError(WorkbenchError):
    """The disk filled up during a run: the run is failed, the published run is untouched."""


class DatabaseDamagedError(WorkbenchError):
    """The database file exists but SQLite cannot read it (not a database, or damaged)."""
