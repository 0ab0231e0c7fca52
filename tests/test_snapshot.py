"""Serving snapshots: written at publish, removed with the run, and never served wrong: a snapshot that
is deleted, truncated, altered or from another run is detected and rebuilt from SQLite, and the API
answers with the same bytes from a snapshot as from SQLite."""
from __future__ import annotations

import logging
import shutil

import pytest

from store import read, snapshot, writer

# tests/test_api_reload.py: run 2 adds user 6, who never touched product 11: its audience becomes [6, 4, 5].
EXTRA_2 = [(6, p, "purchased", f"14:0{i}") for i, p in enumerate((10, 12, 13, 14))]
PATHS = ["/recommend/10?n=3", "/recommend/11", "/recommend/11?n=5&via=fastapi", "/recommend/424242?n=5",
         "/audiences/12.csv", "/audiences/424242.csv?n=2", "/users/3", "/users/6", "/users/77",
         "/recommend/11?n=6", "/health", "/metrics"]  # not /products/sample: random by design


def ids(body: dict) -> list[int]:
    return [r["customer_id"] for r in body["recommendations"]]


def created_at(db, run_id: int) -> str:
    with read.connect(db) as con:
        return read.run(con, run_id)["created_at"]


def test_publish_writes_the_run_snapshot_in_place(tmp_path, build_api_db):
    db, run_id = build_api_db(tmp_path)
    snap = snapshot.load(db, run_id, created_at(db, run_id))
    assert snap.path == tmp_path / "audiences.db.snapshots" / f"run-{run_id}"
    assert snap.arrays["product_ids"].tolist() == [10, 11, 12] and snap.arrays["sizes"].tolist() == [3, 2, 2]
    assert snap.arrays["fallback"][:, 0].tolist() == [1, 2, 3, 4, 5]
    assert snap.arrays["fallback"][:, 1].tolist() == [975_000_000, 600_000_000, 125_000_000, 75_000_000, 25_000_000]
    assert not list(snap.path.parent.glob(".run-*"))  # no temporary folder left behind


def _delete(folder):
    shutil.rmtree(folder)


def _truncate(folder):
    path = folder / "entries.npy"
    path.write_bytes(path.read_bytes()[:-8])


def _alter(folder):
    path = folder / "fallback.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _bad_manifest(folder):
    (folder / "manifest.json").write_text("{not json")


@pytest.mark.parametrize("damage, reason", [
    (_delete, "there is no snapshot"), (_truncate, "entries.npy is"), (_alter, "fallback.npy does not match"),
    (_bad_manifest, "manifest cannot be read")])
def test_a_damaged_snapshot_is_detected_and_rebuilt(tmp_path, build_api_db, api_client, caplog, damage, reason):
    db, run_id = build_api_db(tmp_path)
    folder = snapshot.run_folder(db, run_id)
    damage(folder)
    with pytest.raises(snapshot.SnapshotInvalid, match=reason):
        snapshot.load(db, run_id, created_at(db, run_id))
    with caplog.at_level(logging.WARNING, logger="store.snapshot"), api_client(db) as client:
        assert ids(client.get("/recommend/10?n=3").json()) == [3, 4, 5]
        assert client.get("/users/3").json()["engagement_rank"] == 3
    assert f"snapshot of run {run_id}" in caplog.text and "rebuilding it from" in caplog.text and reason in caplog.text
    assert snapshot.load(db, run_id, created_at(db, run_id)).arrays["product_ids"].tolist() == [10, 11, 12]


def test_a_snapshot_of_another_run_is_not_served(tmp_path, build_api_db, api_client, caplog):
    db, run_1 = build_api_db(tmp_path)
    _, run_2 = build_api_db(tmp_path, extra=EXTRA_2)
    shutil.rmtree(snapshot.run_folder(db, run_2))
    shutil.copytree(snapshot.run_folder(db, run_1), snapshot.run_folder(db, run_2))  # run 1's files, run 2's name
    with caplog.at_level(logging.WARNING, logger="store.snapshot"), api_client(db) as client:
        assert client.get("/health").json()["run_id"] == run_2
        assert ids(client.get("/recommend/11?n=5").json()) == [6, 4, 5]
    assert "belongs to another run (run 1" in caplog.text


def test_the_same_bytes_from_the_snapshot_and_from_sqlite(tmp_path, build_api_db, api_client, monkeypatch):
    db, _ = build_api_db(tmp_path, extra=EXTRA_2)

    def answers() -> tuple:
        with api_client(db) as client:
            responses = {p: client.get(p) for p in PATHS}
            # the load time differs by design; nothing else may
            stamp = client.app.holder.cache.loaded_at.encode()
            return client.app.holder.cache.snapshot.path, {
                p: (r.status_code, r.content.replace(stamp, b"LOADED_AT")) for p, r in responses.items()}

    from_disk, mapped = answers()
    shutil.rmtree(snapshot.folder(db))

    def cannot_write(*args):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(snapshot, "save", cannot_write)  # so the API serves its build from SQLite in memory
    from_memory, built = answers()
    assert from_disk is not None and from_memory is None
    assert b"LOADED_AT" in mapped["/health"][1] and built == mapped


def test_pruned_runs_lose_their_snapshot(tmp_path, build_api_db):
    db, run_1 = build_api_db(tmp_path)
    _, run_2 = build_api_db(tmp_path, extra=EXTRA_2)
    assert snapshot.run_folder(db, run_1).is_dir()
    assert writer.prune_runs(writer.connect(db), keep=1) == [run_1]
    assert not snapshot.run_folder(db, run_1).exists() and snapshot.run_folder(db, run_2).is_dir()
