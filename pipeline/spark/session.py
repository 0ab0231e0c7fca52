"""The SparkSession of a run: local[*] by default, or the cluster named by --spark-master."""
from __future__ import annotations

import os
import re
import shutil
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from store.errors import InputError

DEFAULT_MASTER = "local[*]"
# local, local[4], local[*], local[4,2] (retries), spark://host:port (a standalone cluster, with HA a
# comma-separated list), yarn, k8s://https://host:port.
MASTER_FORMS = re.compile(r"^(local(\[(\d+|\*)(,\d+)?\])?|spark://[^/\s]+|yarn|k8s://\S+)$")
CONNECT_SECONDS = 5


def check_master(master: str) -> None:
    """A malformed or unreachable master URL is one clear line, before a JVM waits a minute on it."""
    if not MASTER_FORMS.match(master):
        raise InputError(f"--spark-master {master!r} is not a Spark master URL; use local[*], local[N] "
                         "or spark://HOST:PORT (e.g. spark://127.0.0.1:7077)")
    if master.startswith("spark://"):
        for address in master[len("spark://"):].split(","):
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit():
                raise InputError(f"--spark-master {master!r}: {address!r} is not HOST:PORT")
            try:
                socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
            except OSError as exc:
                raise InputError(f"cannot reach the Spark master at {address} ({exc.strerror or exc}); start "
                                 "it (sbin/start-master.sh) or check --spark-master") from None


def check_java() -> None:
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise InputError("--engine spark needs Java 17 (no `java` on PATH and no JAVA_HOME); install "
                         "openjdk-17-jre-headless or use --engine inprocess")


def _local_cores(master: str) -> int:
    """Cores of a local master: local -> 1, local[N] -> N, local[*] -> this machine's."""
    found = re.match(r"local\[(\d+|\*)", master)
    if not found:
        return 1
    return os.cpu_count() or 1 if found.group(1) == "*" else int(found.group(1))


def _configs(master: str) -> dict[str, str]:
    local = master.startswith("local")
    return {
        # Every instant is UTC, as in the in-process engine (naive timestamps are taken as UTC).
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Blocks of rows handed to the pandas kernels: big enough that per-block overhead is small.
        "spark.sql.execution.arrow.maxRecordsPerBatch": "100000",
        # Local mode runs the executors inside the driver JVM: 5 GB of heap holds the cached events of a
        # 20M run with little spilling and keeps every process together within a 12 GB budget (the
        # Python workers hold one block each, the driver's Python one chunk of a table).
        "spark.driver.memory": "5g" if local else "2g",
        "spark.executor.memory": "2g",
        "spark.driver.maxResultSize": "2g",
        # A few tasks per core: Spark's default of 200 spends most of a small run scheduling empty tasks.
        "spark.sql.shuffle.partitions": str(4 * _local_cores(master)) if local else "64",
        # Adaptive execution merges the small partitions of a small run's shuffles (Spark's default, stated).
        "spark.sql.adaptive.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
    }


@contextmanager
def spark_session(master: str | None) -> Iterator:
    """A session for one run. An active session on the same master (a test's shared one, the app's) is
    reused and left running; a session created here is stopped when the run ends."""
    master = master or DEFAULT_MASTER
    check_master(master)
    check_java()
    # Workers must import the same packages as the driver (pandas, pyarrow, this project).
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession
    active = SparkSession.getActiveSession()
    if active is not None and active.sparkContext.master == master:
        yield active
        return
    if active is not None:
        active.stop()
    builder = SparkSession.builder.master(master).appName("audience-workbench")
    for key, value in _configs(master).items():
        builder = builder.config(key, value)
    # Cluster workers run this project's code: ship the driver's path to their Python processes.
    builder = builder.config("spark.executorEnv.PYTHONPATH", os.pathsep.join(p for p in sys.path if p))
    session = builder.getOrCreate()
    # A failed job reaches the user as one line (spark_errors); Spark's own stack traces stay out.
    session.sparkContext.setLogLevel("FATAL")
    try:
        yield session
    finally:
        session.stop()


@contextmanager
def spark_errors() -> Iterator[None]:
    """A Spark failure as one line: the first line of the Python or Java error, not pages of traces."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException
    try:
        yield
    except (PySparkException, Py4JError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        last = next((line for line in reversed(lines) if "Error" in line or "Exception" in line),
                    lines[-1] if lines else type(exc).__name__)
        raise RuntimeError(f"a Spark job failed: {last[:300]}") from None
