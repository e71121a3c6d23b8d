"""The main job: materialize the whole graph for every shard of the catalog.

    make run            (= python -m pinlanding_assets.main_job)

Honours PINLANDING_CATALOG and PINLANDING_HOME; runs are recorded in the Dagster instance at
DAGSTER_HOME (default: <PINLANDING_HOME>/dagster), so `make ui` shows them afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from dagster import DagsterInstance, Definitions

from .core.catalog import shard_fingerprints
from .core.settings import DataHome, default_home
from .core.warehouse import Warehouse
from .defs.partitions import shard_partitions


class RunFailed(RuntimeError):
    pass


@dataclass
class StageRun:
    label: str
    seconds: float
    skipped: bool


STATE_TABLE = "main_job_state"


def _fingerprint(*parts: object) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_graph(
    defs: Definitions,
    instance: DagsterInstance,
    shards: list[str] | None = None,
    run_config: dict | None = None,
    force: bool = False,
    on_stage: Callable[[str], None] | None = None,
) -> list[StageRun]:
    """Register the catalog's shards and run ingest -> model -> scoring -> pages.

    Incremental: a step is skipped when its inputs are the same as at its last success —
    a shard's content fingerprint and the step's run config, and for later steps the
    fingerprints of the steps they read — so a re-run over an unchanged catalog does almost
    nothing. `force` runs everything.
    """
    catalog = defs.resources["catalog"]
    warehouse = Warehouse(DataHome(Path(defs.resources["data_home"].home)).warehouse)
    fingerprints = shard_fingerprints(catalog.table())
    all_shards = sorted(fingerprints)
    shards = shards or all_shards
    known = set(instance.get_dynamic_partitions(shard_partitions.name))
    instance.add_dynamic_partitions(shard_partitions.name, [s for s in all_shards if s not in known])
    state = {} if force else dict(warehouse.read_table(STATE_TABLE).select("step", "fingerprint").iter_rows()) if warehouse.has_table(STATE_TABLE) else {}
    config = run_config or {}
    stages: list[StageRun] = []

    def run(job_name: str, fingerprint: str, partition_key: str | None = None) -> str:
        label = f"{job_name}[{partition_key}]" if partition_key else job_name
        if on_stage:
            on_stage(label)
        if state.get(label) == fingerprint:
            print(f"-> {label}: unchanged, skipped", flush=True)
            stages.append(StageRun(label, 0.0, True))
            return fingerprint
        print(f"-> {label}", flush=True)
        started = time.perf_counter()
        result = defs.resolve_job_def(job_name).execute_in_process(
            instance=instance, partition_key=partition_key, run_config=config.get(job_name), raise_on_error=False
        )
        stages.append(StageRun(label, round(time.perf_counter() - started, 1), False))
        for evaluation in result.get_asset_check_evaluations():
            if not evaluation.passed:
                print(f"   check failed: {evaluation.asset_key.to_user_string()}.{evaluation.check_name} {evaluation.metadata}")
        if not result.success:
            raise RunFailed(f"{label} failed (run {result.run_id}); see `make ui` or the log above")
        warehouse.upsert(STATE_TABLE, pl.DataFrame({"step": [label], "fingerprint": [fingerprint]}), ["step"])
        return fingerprint

    ingested = {s: run("shard_ingest", _fingerprint(fingerprints[s], config.get("shard_ingest")), s) for s in shards}
    # The model reads every shard's stored rows, so its inputs are all shards' ingests.
    all_ingested = {s: state.get(f"shard_ingest[{s}]", ingested.get(s)) for s in all_shards}
    model = run("train_model", _fingerprint(all_ingested, config.get("train_model")))
    scored = {s: run("shard_scoring", _fingerprint(ingested[s], model, config.get("shard_scoring")), s) for s in shards}
    run("publish_pages", _fingerprint(model, scored, config.get("publish_pages")))
    return stages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Materialize the whole PinLanding graph.")
    parser.add_argument("--shard", action="append", help="only these shards (default: all)")
    parser.add_argument("--force", action="store_true", help="run every step, even those whose inputs did not change")
    parser.add_argument("--config", type=Path, help="JSON file: {job name: run config}, e.g. "
                        '{"train_model": {"ops": {"clip_model": {"config": {"epochs": 4}}}}}')
    args = parser.parse_args(argv)
    home = default_home()
    os.environ.setdefault("DAGSTER_HOME", str(home / "dagster"))
    os.makedirs(os.environ["DAGSTER_HOME"], exist_ok=True)
    from .definitions import defs

    started = time.perf_counter()
    with DagsterInstance.get() as instance:
        try:
            run_config = json.loads(args.config.read_text()) if args.config else None
            stages = run_graph(defs, instance, args.shard, run_config, force=args.force)
        except RunFailed as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1
    paths = DataHome(home)
    pages = Warehouse(paths.warehouse).read("SELECT count(DISTINCT slug) AS pages, count(*) AS rows FROM landing_pages").row(0)
    print("steps (s): " + ", ".join(f"{st.label}={'skipped' if st.skipped else st.seconds}" for st in stages))
    print(f"done in {time.perf_counter() - started:.0f}s: {pages[0]} landing pages ({pages[1]} product placements)")
    print(f"warehouse: {paths.warehouse}")
    print(f"site: {paths.site / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
