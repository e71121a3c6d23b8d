"""Several shards materialized at once, each run with Dagster's multiprocess executor in its
own process, all writing the same warehouse: no DuckDB lock failure, no lost or doubled rows."""

import multiprocessing
import os

from dagster import DagsterInstance, execute_job, reconstructable

from pinlanding_assets.core.catalog import list_shards, load_catalog, locate_catalog
from pinlanding_assets.core.warehouse import Warehouse


def shard_ingest_job():
    from pinlanding_assets.definitions import build_definitions

    return build_definitions().resolve_job_def("shard_ingest")


def _ingest(shard: str, dagster_home: str, queue) -> None:
    os.makedirs(dagster_home, exist_ok=True)
    with DagsterInstance.local_temp(dagster_home) as instance:
        instance.add_dynamic_partitions("catalog_shard", [shard])
        config = {"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}}
        with execute_job(reconstructable(shard_ingest_job), instance, tags={"dagster/partition": shard}, run_config=config) as result:
            queue.put((shard, result.success))


def test_parallel_shard_runs_share_the_warehouse(sample_catalog, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("PINLANDING_HOME", str(home))  # read by the job's resources in each process
    monkeypatch.setenv("PINLANDING_CATALOG", str(sample_catalog))
    table = locate_catalog(sample_catalog)
    shards = list_shards(table)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    for _round in range(2):  # the second round re-materializes every shard at once
        procs = [ctx.Process(target=_ingest, args=(s, str(tmp_path / f"dagster-{s}-{_round}"), queue)) for s in shards]
        for p in procs:
            p.start()
        for p in procs:
            p.join(300)
        outcomes = dict(queue.get(timeout=5) for _ in shards)
        assert outcomes == {s: True for s in shards}
    warehouse = Warehouse(home / "warehouse.duckdb")
    expected = load_catalog(table).products.group_by("shard").len()
    stored = warehouse.read("SELECT shard, count(*) AS len FROM catalog_products GROUP BY shard")
    assert dict(stored.rows()) == dict(expected.rows())
    duplicates = warehouse.read("SELECT product_id, key, value, count(*) AS n FROM raw_attributes GROUP BY ALL HAVING n > 1")
    assert duplicates.is_empty()
    assert set(warehouse.read("SELECT DISTINCT shard FROM raw_attributes").get_column("shard")) == set(shards)
