import multiprocessing

import polars as pl

from pinlanding_assets.core.warehouse import Warehouse


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
