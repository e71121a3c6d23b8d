"""The whole graph through Dagster on ~300 real products, with a temporary warehouse and instance."""

import csv
import shutil
from pathlib import Path

import polars as pl
import pytest
from dagster import DagsterInstance

from pinlanding_assets.core.warehouse import Warehouse
from pinlanding_assets.definitions import build_definitions
from pinlanding_assets.cli import run_graph

from pinlanding_tests.offline_resources import offline_resources

FAST_RUN_CONFIG = {
    "shard_ingest": {"ops": {"raw_attributes": {"config": {"sample_share": 0.5, "sample_min": 40}}}},
    # A short-trained model on 160 labeled products: this test is about the graph's wiring and the
    # pages' invariants, so the model-quality gates are opened here; model quality is gated
    # by the default thresholds in real runs and measured by bench/bench_model.py.
    "train_model": {"ops": {"clip_model": {"config": {"epochs": 8, "min_steps": 200, "eval_max_products": 400, "min_key_top1": 0.0, "min_key_precision": 0.0}}}},
    "shard_scoring": {"ops": {"product_attribute_scores": {"config": {"min_assignment_precision": 0.0}}}},
}


@pytest.fixture(scope="module")
def catalog(real_slice: Path, tmp_path_factory) -> Path:
    """This module's own copy of the slice: its last test adds products to it."""
    return Path(shutil.copytree(real_slice, tmp_path_factory.mktemp("catalog") / "slice"))


@pytest.fixture(scope="module")
def graph_run(catalog: Path, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    defs = build_definitions(offline_resources(home, catalog))
    with DagsterInstance.ephemeral() as instance:
        stages = run_graph(defs, instance, run_config=FAST_RUN_CONFIG)
        yield defs, instance, Warehouse(home / "warehouse.duckdb"), home, stages


def test_landing_pages_exist_and_respect_minimum_size(graph_run):
    _, _, warehouse, home, _ = graph_run
    pages = warehouse.read_table("landing_pages")
    assert pages.get_column("slug").n_unique() >= 3
    sizes = pages.group_by("slug").len().get_column("len")
    assert sizes.min() >= 10
    assert (home / "site" / "index.html").is_file()
    assert (home / "exports" / "landing_pages.parquet").is_file()


def test_every_product_on_a_page_carries_the_page_attributes(graph_run):
    _, _, warehouse, _, _ = graph_run
    missing = warehouse.read(
        """
        WITH page_attrs AS (
            SELECT q.slug, a.key, a.value FROM collection_queries q, UNNEST(q.attributes) AS t(a)
        )
        SELECT p.slug, p.product_id, pa.key, pa.value
        FROM landing_pages p JOIN page_attrs pa USING (slug)
        LEFT JOIN product_attribute_scores s
          ON s.product_id = p.product_id AND s.key = pa.key AND s.value = pa.value AND s.assigned
        WHERE s.product_id IS NULL
        """
    )
    assert missing.is_empty(), missing.head()


def test_partitions_registered_and_checks_evaluated(graph_run):
    _, instance, _, _, stages = graph_run
    assert sorted(instance.get_dynamic_partitions("catalog_shard")) == ["accessories", "apparel", "footwear"]
    assert [s.label for s in stages][-1] == "publish_pages"
    assert not any(s.skipped for s in stages)


def test_unchanged_rerun_skips_every_step(graph_run):
    defs, instance, warehouse, _, _ = graph_run
    pages_before = warehouse.read_table("landing_pages").sort("slug", "rank")
    stages = run_graph(defs, instance, run_config=FAST_RUN_CONFIG)
    assert all(s.skipped for s in stages), [s for s in stages if not s.skipped]
    assert warehouse.read_table("landing_pages").sort("slug", "rank").equals(pages_before)


def test_rematerializing_a_shard_replaces_its_rows(graph_run):
    defs, instance, warehouse, _, _ = graph_run
    before = warehouse.read("SELECT count(*) AS n FROM raw_attributes WHERE shard = 'footwear'").item()
    scores_before = warehouse.read_table("product_attribute_scores").height
    for job in ("shard_ingest", "shard_scoring"):
        result = defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key="footwear", run_config=FAST_RUN_CONFIG.get(job))
        assert result.success
    assert warehouse.read("SELECT count(*) AS n FROM raw_attributes WHERE shard = 'footwear'").item() == before
    assert warehouse.read_table("product_attribute_scores").height == scores_before
    embeddings = warehouse.read("SELECT count(*) AS n, count(DISTINCT product_id) AS d FROM product_embeddings").row(0)
    assert embeddings[0] == embeddings[1]


def changed_code(defs, asset: str):
    """The same definitions, with `asset`'s code_version bumped (what editing its logic does)."""
    return defs.map_resolved_asset_specs(func=lambda spec: spec.replace_attributes(code_version=f"{spec.code_version}+edited"), selection=asset)


def test_changed_code_reruns_its_step_and_those_after_only(graph_run):
    defs, instance, _, _, _ = graph_run
    stages = run_graph(changed_code(defs, "collection_queries"), instance, run_config=FAST_RUN_CONFIG)
    assert [s.label for s in stages if not s.skipped] == ["publish_pages"]
    stages = run_graph(changed_code(defs, "product_attribute_scores"), instance, run_config=FAST_RUN_CONFIG)
    assert [s.label for s in stages if not s.skipped] == ["shard_scoring[accessories]", "shard_scoring[apparel]", "shard_scoring[footwear]", "publish_pages"]
    # Back to the code of the last run of each step: scoring and pages re-run (their code
    # changed back), ingest and training stay skipped throughout.
    stages = run_graph(defs, instance, run_config=FAST_RUN_CONFIG)
    assert not any(s.label.startswith(("shard_ingest", "train_model")) for s in stages if not s.skipped)


def test_new_products_in_one_shard_rerun_its_ingest_scoring_and_the_publish_only(graph_run, catalog: Path, shared_dataset: Path):
    """Issue 15 item 4: a refresh costs what changed. Two footwear products join the catalog:
    fewer teacher answers change than `RetrainPolicy.min_sample_change`, so the promoted model
    keeps scoring; the new products are encoded, the others' embeddings reused. (The last
    test of the module: it changes the module's catalog.)"""
    defs, instance, warehouse, _, _ = graph_run
    with (catalog / "styles.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    known = {row["id"] for row in rows}
    with (shared_dataset / "styles.csv").open(newline="") as handle:
        new = [row for row in csv.DictReader(handle) if row["masterCategory"] == "Footwear" and row["id"] not in known][:2]
    for row in new:
        shutil.copyfile(shared_dataset / row["image"], catalog / row["image"])
    with (catalog / "styles.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows + new)
    model_before = warehouse.read("SELECT version FROM clip_model WHERE status = 'promoted'").height

    stages = run_graph(defs, instance, run_config=FAST_RUN_CONFIG)
    assert [s.label for s in stages if not s.skipped] == ["shard_ingest[footwear]", "shard_scoring[footwear]", "publish_pages"]
    assert warehouse.read("SELECT version FROM clip_model WHERE status = 'promoted'").height == model_before  # no new model
    scored = warehouse.read("SELECT count(DISTINCT product_id) AS n FROM product_attribute_scores WHERE product_id IN (SELECT UNNEST(?::VARCHAR[]))", [[r["id"] for r in new]]).item()
    assert scored == 2
