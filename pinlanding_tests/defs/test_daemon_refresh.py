"""Partition-wise refresh the way it is deployed (issue 12, item 7).

A code server (`dagster api grpc -m pinlanding_assets.definitions`) with PINLANDING_HOME and
PINLANDING_CATALOG at a temporary home and a copy of the sample catalog, `dagster-daemon run`
with the QueuedRunCoordinator on a workspace pointing at it, and, after a first build
(shards ingested, a model trained), three `shard_refresh` runs submitted together with
`dagster job launch`, one per shard: the daemon launches them at once, each in its own
process with its own Spark. Before the fix two of three such runs failed in
`landing_pages` (Spark reading `spark-input/product_attributes.parquet` while another run
rewrote it; runs started by `catalog_refresh_sensor` are the same runs). Now all three must
succeed, and the site must be one whole build that matches the tables.

Refresh does not fan out (issue 13): the shard runs ingest and score only; the daemon's
`publish_after_shard_updates` automation then publishes once, in one run, after all three
have finished (before, every shard run rebuilt collections, pages and the site).

The runs use the default executor (each step in its own process, as the sensor's runs do),
which starts the three `landing_pages` steps within a second of each other; the scoring gate
is opened because the model is trained for seconds only (gates are tested elsewhere, and the
sensor's run requests in test_sensors.py). Against the code before the fix this test failed
in `landing_pages` (`OSError: Directory not empty` from the shared `site.building`).
"""

from __future__ import annotations

import json
import os
import signal
import shutil
import socket
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from pinlanding_assets.core.catalog import list_shards, locate_catalog
from pinlanding_assets.core.site import SiteConfig
from pinlanding_assets.core.warehouse import Warehouse
from pinlanding_assets.definitions import build_definitions
from pinlanding_assets.defs.llm_resources import LLMResource
from pinlanding_assets.defs.resources import CatalogResource, DataHomeResource

REPO_ROOT = Path(__file__).resolve().parents[2]  # this checkout: the code server imports it
BIN = Path(sys.executable).parent
DAGSTER_YAML = """
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 3
telemetry:
  enabled: false
"""
# The smallest model that gets promoted (gates opened): the runs need one, not a good one.
TRAIN = {"ops": {"clip_model": {"config": {"epochs": 1, "min_steps": 10, "batch_size": 64, "eval_max_products": 60, "baseline_max_products": 20,
                                           "min_recall_at_1": 0.0, "min_lift_over_prior": -1.0, "min_key_top1": 0.0, "min_key_precision": 0.0}}}}
REFRESH = {"ops": {"product_attribute_scores": {"config": {"min_assignment_precision": 0.0}}}}
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
WAIT_S = 420  # a bound for a failure, not the expected time


class Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def first_build(catalog: Path, home: Path, instance: DagsterInstance) -> list[str]:
    """What `make run` leaves before a refresh: every shard ingested, a promoted model."""
    defs = build_definitions(
        {"data_home": DataHomeResource(home=str(home)), "catalog": CatalogResource(location=str(catalog)), "llm": LLMResource(extractor="offline")}
    )
    shards = list_shards(locate_catalog(catalog))
    instance.add_dynamic_partitions("catalog_shard", shards)
    for shard in shards:
        assert defs.resolve_job_def("shard_ingest").execute_in_process(instance=instance, partition_key=shard).success
    assert defs.resolve_job_def("train_model").execute_in_process(instance=instance, run_config=TRAIN).success
    return shards


def change_one_product_per_shard(catalog: Path) -> None:
    table = catalog / "products.csv"
    frame = pl.read_csv(table, infer_schema=False)
    first = pl.col("id").is_in(frame.group_by("shard").agg(pl.col("id").first()).get_column("id"))
    frame.with_columns(pl.when(first).then(pl.col("title") + " Classic").otherwise(pl.col("title")).alias("title")).write_csv(table)


def failures(instance: DagsterInstance, run_id: str) -> list[str]:
    """What failed in a run, down to the root cause of each error."""
    out = []
    for entry in instance.all_logs(run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}):
        event = entry.dagster_event
        error = getattr(event.event_specific_data, "error", None)
        while error is not None and error.cause is not None:
            error = error.cause
        out.append(f"{event.step_key or 'run'}: {(f'{error.cls_name}: {error.message}' if error else event.message or '').strip()[-600:]}")
    return out


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 180
    while True:
        assert server.poll() is None, f"the code server exited:\n{log.read_text()[-3000:]}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return  # the server listens once the definitions are loaded
        except OSError:
            assert time.monotonic() < deadline, f"the code server did not start:\n{log.read_text()[-3000:]}"
            time.sleep(1)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL to the process group it was started in (its own children)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def test_three_shard_refreshes_launched_together_all_publish(sample_catalog, tmp_path, monkeypatch) -> None:
    catalog, home, dagster_home = tmp_path / "catalog", tmp_path / "home", tmp_path / "dagster"
    shutil.copytree(sample_catalog, catalog)
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
    port = free_port()
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {port}\n      location_name: pinlanding\n")
    for name, value in {
        "DAGSTER_HOME": dagster_home, "PINLANDING_HOME": home, "PINLANDING_CATALOG": catalog, "PINLANDING_EXTRACTOR": "offline",
        "PINLANDING_SPARK_SHUFFLE_PARTITIONS": 2, "PINLANDING_SPARK_DRIVER_MEMORY": "1g",
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p),  # this checkout, not the installed one
    }.items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    timings = {}
    started_at = time.monotonic()

    with DagsterInstance.get() as instance:
        shards = first_build(catalog, home, instance)
        assert len(shards) == 3
        change_one_product_per_shard(catalog)
        timings["first build"] = time.monotonic() - started_at

        logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("code-server", "daemon")}
        spawn = {"cwd": tmp_path, "stderr": subprocess.STDOUT, "start_new_session": True}
        server = subprocess.Popen([str(BIN / "dagster"), "api", "grpc", "-m", "pinlanding_assets.definitions", "-d", str(REPO_ROOT), "-h", "127.0.0.1", "-p", str(port)], stdout=logs["code-server"], **spawn)
        daemon, launches = None, []
        try:
            wait_for_port(port, server, tmp_path / "code-server.log")
            daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], stdout=logs["daemon"], **spawn)
            timings["code server up"] = time.monotonic() - started_at
            launches = [
                subprocess.Popen(
                    [str(BIN / "dagster"), "job", "launch", "-w", str(workspace), "-j", "shard_refresh", "--tags", json.dumps({"dagster/partition": shard}), "--config-json", json.dumps(REFRESH)],
                    stdout=subprocess.PIPE, text=True, **spawn,
                )
                for shard in shards
            ]
            for launch in launches:
                output = launch.communicate(timeout=180)[0]
                assert launch.returncode == 0, output[-2000:]
            timings["runs queued"] = time.monotonic() - started_at
            deadline = time.monotonic() + WAIT_S
            while True:
                records = instance.get_run_records(RunsFilter(job_name="shard_refresh"))
                if len(records) == 3 and all(r.dagster_run.status in FINISHED for r in records):
                    break
                assert time.monotonic() < deadline, f"runs not finished after {WAIT_S}s: {[(r.dagster_run.tags.get('dagster/partition'), r.dagster_run.status) for r in records]}\n{(tmp_path / 'daemon.log').read_text()[-3000:]}"
                time.sleep(2)
            timings["runs finished"] = time.monotonic() - started_at
            while True:  # the one publish the automation starts once the batch has settled
                publishes = [r for r in instance.get_run_records(RunsFilter()) if AssetKey("landing_pages") in (r.dagster_run.asset_selection or ())]
                if publishes and all(r.dagster_run.status in FINISHED for r in publishes):
                    break
                assert time.monotonic() < deadline, f"no publish after the shard runs:\n{(tmp_path / 'daemon.log').read_text()[-3000:]}"
                time.sleep(2)
            time.sleep(40)  # one more automation tick: it must not publish again
            publishes = [r for r in instance.get_run_records(RunsFilter()) if AssetKey("landing_pages") in (r.dagster_run.asset_selection or ())]
            timings["published"] = time.monotonic() - started_at
        finally:
            for process in (*launches, daemon, server):
                if process is not None:
                    stop(process)
            for handle in logs.values():
                handle.close()
        print("timings (s from the start):", {k: round(v) for k, v in timings.items()})

        outcome = {r.dagster_run.tags.get("dagster/partition"): r.dagster_run.status for r in records}
        assert sorted(outcome) == shards, outcome
        failed = {r.dagster_run.tags.get("dagster/partition"): failures(instance, r.dagster_run.run_id) for r in records if r.dagster_run.status != DagsterRunStatus.SUCCESS}
        assert not failed, json.dumps(failed, indent=1)
        assert max(r.start_time for r in records) < min(r.end_time for r in records), "the three runs did not overlap: nothing concurrent was tested"
        assert len(publishes) == 1, [(r.dagster_run.run_id, r.dagster_run.status) for r in publishes]
        publish = publishes[0]
        assert publish.dagster_run.status == DagsterRunStatus.SUCCESS, failures(instance, publish.dagster_run.run_id)
        assert publish.start_time >= max(r.end_time for r in records), "published before the batch had settled"
        publish_tables = build_definitions().resolve_job_def("publish_pages").asset_layer.selected_asset_keys
        assert publish.dagster_run.asset_selection == publish_tables  # both publish steps, every table they write

    # The site is one whole build and says what the tables say.
    warehouse = Warehouse(home / "warehouse.duckdb")
    pages = warehouse.read_table("landing_pages").sort("slug", "rank")
    site = home / "site"
    assert site.is_symlink() and site.resolve().parent == home / "site-builds"
    assert 1 <= len(list((home / "site-builds").iterdir())) <= SiteConfig.keep_builds
    feed = json.loads((site / "feed.json").read_text())
    expected = {slug: frame.get_column("product_id").to_list() for (slug,), frame in pages.group_by("slug")}
    assert expected and {item["id"]: [p["product_id"] for p in item["_pinlanding"]["products"]] for item in feed["items"]} == expected
    published = warehouse.read_table("published_pages")
    assert dict(zip(published.get_column("slug"), published.get_column("products").to_list())) == expected
    for slug in expected:
        page = site / "pages" / f"{slug}.html"
        parser = Images()
        parser.feed(page.read_text())
        assert len(parser.sources) == len(expected[slug]) and all((page.parent / src).is_file() for src in parser.sources)
    assert not list((home / "spark-input").glob("*")), "a run's Spark inputs were left behind"
    refreshes = set(warehouse.read("SELECT DISTINCT refresh_id FROM page_refresh_log").get_column("refresh_id"))
    assert refreshes == {publish.dagster_run.run_id}
