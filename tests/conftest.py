"""Shared test helpers: tiny event files written in the test, and a small published database."""
from __future__ import annotations

from pathlib import Path

import pytest

HEADER = "customer_id,product_id,event,event_date"

# Four users, three products; worked by hand in test_features.py and test_audiences.py.
FOUR_USERS = [
    (1, 1, "purchased", "2023-01-01T00:00:00"),
    (1, 2, "cart", "2023-01-03T12:00:00"),
    (1, 1, "cart", "2023-01-11T00:00:00"),
    (2, 3, "wishlist", "2023-01-21T00:00:00"),
    (3, 1, "rating", "2023-01-30T00:00:00"),
    (3, 3, "search_keyword", "2023-01-30T23:00:00"),
    (4, 2, "cart", "2023-01-31T00:00:00"),
    (4, 2, "cart", "2023-01-31T06:00:00"),
]

# The workbench tests' run: 14 rows read, one exact duplicate and one bad date dropped, so 12 clean
# interactions by 7 users on 6 products; product 10 is the most active (4 interactions).
WORKBENCH_EVENTS = """customer_id,product_id,event,event_date
1,10,purchased,2023-01-05T10:00:00
1,11,cart,2023-01-20T10:00:00
1,12,cart,2023-02-03T10:00:00
1,10,cart,2023-03-01T10:00:00
2,10,cart,2023-01-06T10:00:00
2,13,wishlist,2023-02-10T10:00:00
3,11,purchased,2023-01-10T10:00:00
4,12,search_keyword,2023-02-15T10:00:00
5,14,rating,2023-03-10T10:00:00
6,10,cart,2023-03-12T10:00:00
6,14,purchased,2023-03-15T10:00:00
7,15,cart,2023-03-20T10:00:00
2,10,cart,2023-01-06T10:00:00
8,11,cart,not-a-date
"""


def write_events(path: Path, rows, header: str = HEADER) -> Path:
    lines = [header] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def four_users_csv(tmp_path: Path) -> Path:
    return write_events(tmp_path / "four_users.csv", FOUR_USERS)


@pytest.fixture
def published_db(tmp_path: Path, four_users_csv: Path) -> Path:
    """A database whose current run is the four-user example at depth 3."""
    from pipeline.config import RunParams
    from pipeline.run import execute
    db = tmp_path / "audiences.db"
    execute(four_users_csv, db=db, params=RunParams(depth=3, strategy="engagement"))
    return db


@pytest.fixture(scope="session")
def spark():
    """One local[2] SparkSession for every Spark test (a JVM start costs seconds); a run asked for
    --spark-master local[2] reuses it."""
    from pipeline.spark.session import spark_session
    with spark_session("local[2]") as session:
        # Test tables have a few rows: one shuffle partition per core instead of four.
        session.conf.set("spark.sql.shuffle.partitions", "2")
        yield session
