import multiprocessing
import threading
import time

import polars as pl
import pytest

from pinlanding_assets.core.warehouse import Warehouse, WarehouseError


def test_replace_rows_replaces_one_partition_only(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.replace_rows("t", pl.DataFrame({"shard": ["a", "a"], "x": [1, 2]}), "shard", ["a"])
    wh.replace_rows("t", pl.DataFrame({"shard": ["b"], "x": [3]}), "shard", ["b"])
    wh.replace_rows("t", pl.DataFrame({"shard": ["a"], "x": [9]}), "shard", ["a"])  # re-run of a
    wh.replace_rows("t", pl.DataFrame({"shard": ["a"], "x": [9]}), "shard", ["a"])  # and again
    assert sorted(wh.read_table("t").rows()) == [("a", 9), ("b", 3)]


def test_upsert_replaces_by_key(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.upsert("c", pl.DataFrame({"k": ["x", "y"], "v": [1, 2]}), ["k"])
    wh.upsert("c", pl.DataFrame({"k": ["y", "z"], "v": [20, 3]}), ["k"])
    assert sorted(wh.read_table("c").rows()) == [("x", 1), ("y", 20), ("z", 3)]


def test_read_of_missing_table_is_empty(tmp_path):
    assert Warehouse(tmp_path / "w.duckdb").read_table("nothing").is_empty()


def _writer(path: str, shard: str) -> None:
    wh = Warehouse(path)
    for i in range(15):
        wh.replace_rows("t", pl.DataFrame({"shard": [shard] * 50, "x": list(range(i, i + 50))}), "shard", [shard])


def test_concurrent_processes_do_not_hit_duckdb_lock_errors(tmp_path):
    path = str(tmp_path / "w.duckdb")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, s)) for s in ("a", "b", "c")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    counts = dict(Warehouse(path).read("SELECT shard, count(*) FROM t GROUP BY shard").rows())
    assert counts == {"a": 50, "b": 50, "c": 50}


def test_failed_commit_raises_its_own_error_not_the_rollbacks(tmp_path, monkeypatch):
    """Disk full at COMMIT: DuckDB ends the transaction itself, so the ROLLBACK that follows
    fails with "no transaction is active"; the error raised must be the COMMIT's."""
    import duckdb

    from pinlanding_assets.core import warehouse as warehouse_module

    wh = Warehouse(tmp_path / "w.duckdb")
    wh.replace_rows("t", pl.DataFrame({"shard": ["a"], "x": [1]}), "shard", ["a"])
    real_run = warehouse_module._run

    def run_on_a_full_disk(con, sql, params=None):
        if sql == "COMMIT":
            real_run(con, "ROLLBACK")  # what DuckDB does when its commit cannot be written
            raise duckdb.IOException("Could not write to the write-ahead log: No space left on device")
        return real_run(con, sql, params)

    monkeypatch.setattr(warehouse_module, "_run", run_on_a_full_disk)
    with pytest.raises(duckdb.IOException, match="No space left on device") as raised:
        wh.replace_rows("t", pl.DataFrame({"shard": ["a"], "x": [2]}), "shard", ["a"])
    assert any("ROLLBACK" in note for note in getattr(raised.value, "__notes__", []))
    monkeypatch.setattr(warehouse_module, "_run", real_run)
    assert wh.read_table("t").rows() == [("a", 1)]  # the old rows, untouched


def test_nested_connect_in_one_thread_fails_at_once(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb", lock_timeout_s=3)
    same_file = Warehouse(tmp_path / "w.duckdb", lock_timeout_s=3)  # the lock is per file, not per object
    with wh.connect() as con:
        started = time.monotonic()
        with pytest.raises(WarehouseError, match="already has a connection"):
            same_file.read_table("t")
        assert time.monotonic() - started < 1.0  # not the lock timeout
        assert con.execute("SELECT 1").fetchall() == [(1,)]  # the open connection is unharmed
    assert same_file.read_table("t").is_empty()  # and the lock is free again afterwards


def test_other_threads_still_queue_on_the_lock(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb", lock_timeout_s=30)
    outcome: list = []

    def write_from_another_thread():
        try:
            outcome.append(wh.replace_rows("t", pl.DataFrame({"shard": ["b"], "x": [2]}), "shard", ["b"]))
        except Exception as error:  # surfaced by the assertion below
            outcome.append(error)

    with wh.connect() as con:
        con.execute('CREATE TABLE t AS SELECT \'a\' AS shard, 1 AS x').fetchall()
        writer = threading.Thread(target=write_from_another_thread)
        writer.start()
        writer.join(0.5)
        assert writer.is_alive() and outcome == []  # waiting for the lock, not refused
    writer.join(30)
    assert outcome == [1]
    assert sorted(wh.read_table("t").rows()) == [("a", 1), ("b", 2)]


def test_a_column_the_new_rows_add_joins_the_table_and_a_missing_one_is_refused(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.replace_rows("t", pl.DataFrame({"shard": ["a", "b"], "x": [1, 2]}), "shard", ["a", "b"])
    warehouse.replace_rows("t", pl.DataFrame({"shard": ["b"], "x": [3], "y": [0.5]}), "shard", ["b"])
    assert warehouse.read_table("t").sort("shard").rows() == [("a", 1, None), ("b", 3, 0.5)]  # stored rows: NULL until rewritten
    with pytest.raises(WarehouseError, match="schema changed"):
        warehouse.replace_rows("t", pl.DataFrame({"shard": ["a"], "y": [0.1]}), "shard", ["a"])
