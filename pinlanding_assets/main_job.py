"""The main job: materialize the whole graph for every shard of the catalog.

    make run            (= python -m pinlanding_assets.main_job)

Honours PINLANDING_CATALOG and PINLANDING_HOME; runs are recorded in the Dagster instance at
DAGSTER_HOME (default: <PINLANDING_HOME>/dagster), so `make ui` shows them afterwards.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from dagster import DagsterInstance, Definitions

from .core.catalog import list_shards
from .core.settings import default_home
from .defs.partitions import shard_partitions


class RunFailed(RuntimeError):
    pass


def run_graph(defs: Definitions, instance: DagsterInstance, shards: list[str] | None = None, run_config: dict | None = None) -> dict:
    """Register the catalog's shards and run ingest -> model -> scoring -> pages."""
    catalog = defs.resources["catalog"]
    all_shards = list_shards(catalog.table())
    shards = shards or all_shards
    known = set(instance.get_dynamic_partitions(shard_partitions.name))
    instance.add_dynamic_partitions(shard_partitions.name, [s for s in all_shards if s not in known])
    timings: dict[str, float] = {}

    def run(job_name: str, partition_key: str | None = None) -> None:
        started = time.perf_counter()
        label = f"{job_name}[{partition_key}]" if partition_key else job_name
        print(f"-> {label}", flush=True)
        result = defs.resolve_job_def(job_name).execute_in_process(
            instance=instance, partition_key=partition_key, run_config=(run_config or {}).get(job_name), raise_on_error=False
        )
        timings[label] = round(time.perf_counter() - started, 1)
        failed_checks = [e for e in result.get_asset_check_evaluations() if not e.passed]
        for evaluation in failed_checks:
            print(f"   check failed: {evaluation.asset_key.to_user_string()}.{evaluation.check_name} {evaluation.metadata}")
        if not result.success:
            raise RunFailed(f"{label} failed (run {result.run_id}); see `make ui` or the log above")

    for shard in shards:
        run("shard_ingest", shard)
    run("train_model")
    for shard in shards:
        run("shard_scoring", shard)
    run("publish_pages")
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Materialize the whole PinLanding graph.")
    parser.add_argument("--shard", action="append", help="only these shards (default: all)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    home = default_home()
    os.environ.setdefault("DAGSTER_HOME", str(home / "dagster"))
    os.makedirs(os.environ["DAGSTER_HOME"], exist_ok=True)
    from .definitions import defs
    from .core.warehouse import Warehouse
    from .core.settings import DataHome

    started = time.perf_counter()
    with DagsterInstance.get() as instance:
        try:
            timings = run_graph(defs, instance, args.shard)
        except RunFailed as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1
    paths = DataHome(home)
    pages = Warehouse(paths.warehouse).read("SELECT count(DISTINCT slug) AS pages, count(*) AS rows FROM landing_pages").row(0)
    print(f"timings (s): {timings}")
    print(f"done in {time.perf_counter() - started:.0f}s: {pages[0]} landing pages ({pages[1]} product placements)")
    print(f"warehouse: {paths.warehouse}")
    print(f"site: {paths.site / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
