"""Gates that really gate (issue 12, items 1-3), through Dagster on the sample catalog.

One catalog for the whole module, whose `footwear` shard carries wrong labels (every
product "yellow" "Dresses": values the vocabulary names, so the gate can check them), so its assignments fail their precision gate while the other
shards pass. Tests run in file order and build on each other's state:

1. `make run` publishes the good shards, keeps footwear out and says why (exit status 3);
2. the refresh sensor's first tick after that run starts nothing (nothing changed);
3. a rejected model is never used: a later refresh scores with the last promoted one, and
   scores that fail their gate never reach the pages: both leave scores and pages exactly
   as they were;
4. a shard that leaves the catalog leaves the scores, the pages and the sitemap.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
from dagster import DagsterInstance, SensorResult, SkipReason, build_sensor_context

from pinlanding_assets.core.model_registry import ModelRegistry
from pinlanding_assets.core.warehouse import Warehouse
from pinlanding_assets.definitions import build_definitions
from pinlanding_assets.defs.sensors import catalog_refresh_sensor
from pinlanding_assets.cli import EXIT_BLOCKED, exit_status, run_graph, summary

from pinlanding_tests.offline_resources import offline_resources

# Model gates opened (the corrupted labels would drag the held-out figures of every model
# down); the scoring gate keeps its default threshold: it is what this module tests.
RUN_CONFIG = {
    "train_model": {"ops": {"clip_model": {"config": {"epochs": 3, "min_steps": 40, "eval_max_products": 150, "baseline_max_products": 50,
                                                       "min_recall_at_1": 0.0, "min_lift_over_prior": -1.0, "min_key_top1": 0.0, "min_key_precision": 0.0}}}},
}


class Home:
    def __init__(self, root: Path, sample_catalog: Path):
        self.catalog = root / "catalog"
        shutil.copytree(sample_catalog, self.catalog)
        table = self.catalog / "products.csv"
        frame = pl.read_csv(table, infer_schema=False)
        footwear = pl.col("shard") == "footwear"
        frame.with_columns(
            pl.when(footwear).then(pl.lit("yellow")).otherwise(pl.col("label_color")).alias("label_color"),
            pl.when(footwear).then(pl.lit("Dresses")).otherwise(pl.col("label_product_type")).alias("label_product_type"),
        ).write_csv(table)
        self.home = root / "home"
        self.resources = offline_resources(self.home, self.catalog)
        self.defs = build_definitions(self.resources)
        self.instance = DagsterInstance.ephemeral()
        self.warehouse = Warehouse(self.home / "warehouse.duckdb")

    def snapshot(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        scores = self.warehouse.read_table("product_attribute_scores").sort("product_id", "key", "value")
        pages = self.warehouse.read_table("landing_pages").sort("slug", "rank")
        return scores, pages

    def job(self, name: str, partition: str | None = None, run_config: dict | None = None):
        return self.defs.resolve_job_def(name).execute_in_process(instance=self.instance, partition_key=partition, run_config=run_config, raise_on_error=False)


@pytest.fixture(scope="module")
def home(sample_catalog: Path, tmp_path_factory) -> Home:
    return Home(tmp_path_factory.mktemp("gates"), sample_catalog)


def test_a_blocked_shard_does_not_stop_the_others(home: Home, capsys) -> None:
    stages = run_graph(home.defs, home.instance, run_config=RUN_CONFIG)
    outcome = {s.label: s.outcome for s in stages}
    assert outcome["shard_scoring[footwear]"] == "blocked"
    assert outcome["shard_scoring[apparel]"] == outcome["shard_scoring[accessories]"] == outcome["publish_pages"] == "ran"
    assert exit_status(stages) == EXIT_BLOCKED
    text = summary(stages)
    assert "shard_scoring[footwear]: blocked: product_attribute_scores.assignment_precision" in text and "below 0.8" in text
    # The blocked shard's scores never reached the warehouse; the others were published.
    shards = set(home.warehouse.read("SELECT DISTINCT shard FROM product_attribute_scores").get_column("shard"))
    assert shards == {"apparel", "accessories"}
    assert home.warehouse.read("SELECT count(DISTINCT slug) FROM landing_pages").item() >= 3


def test_the_sensor_first_tick_after_make_run_starts_nothing(home: Home) -> None:
    context = build_sensor_context(instance=home.instance, cursor=None, resources={k: home.resources[k] for k in ("catalog", "data_home", "run_profile")})
    result = catalog_refresh_sensor(context)
    assert isinstance(result, SkipReason), result


def test_a_rejected_model_and_blocked_scores_leave_scores_and_pages_as_they_were(home: Home) -> None:
    registry = ModelRegistry(home.warehouse, home.home / "models")
    promoted = registry.current()
    before = home.snapshot()

    # 1. Training with a gate it cannot pass: the candidate is rejected, not promoted.
    strict = {"ops": {"clip_model": {"config": RUN_CONFIG["train_model"]["ops"]["clip_model"]["config"] | {"min_recall_at_1": 0.999}}}}
    assert not home.job("train_model", run_config=strict).success
    assert registry.history().get_column("status").to_list()[-1] == "rejected"
    assert registry.current() == promoted
    # A refresh started afterwards (what the sensor does) scores with the promoted model,
    # and the publish that follows it (the automation's) changes nothing.
    assert home.job("shard_refresh", "apparel").success
    assert home.job("publish_pages").success
    after = home.snapshot()
    assert set(after[0].get_column("model_version")) == {promoted.version}
    assert after[0].equals(before[0]) and after[1].equals(before[1])

    # 2. A shard whose new scores fail their gate keeps its last good scores, and the pages
    # do not move, although its products changed.
    table = home.catalog / "products.csv"
    frame = pl.read_csv(table, infer_schema=False)
    frame.with_columns(pl.when(pl.col("shard") == "apparel").then(pl.col("title").str.replace("Men", "Women")).otherwise(pl.col("title")).alias("title")).write_csv(table)
    blocked = {"ops": {"product_attribute_scores": {"config": {"min_assignment_precision": 0.999}}}}
    result = home.job("shard_refresh", "apparel", run_config=blocked)
    assert not result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["assignment_precision"].passed and checks["assignment_precision"].severity.value == "ERROR"
    assert home.job("publish_pages").success
    final = home.snapshot()
    assert final[0].equals(before[0]) and final[1].equals(before[1])
    frame.write_csv(table)  # the catalog as it was, for the next test


def test_a_removed_shard_leaves_the_scores_the_pages_and_the_sitemap(home: Home) -> None:
    run_graph(home.defs, home.instance, run_config=RUN_CONFIG)  # the catalog is back as it was
    accessories = set(home.warehouse.read("SELECT product_id FROM catalog_products WHERE shard = 'accessories'").get_column("product_id"))
    slugs_before = set(home.warehouse.read_table("landing_pages").get_column("slug"))
    table = home.catalog / "products.csv"
    pl.read_csv(table, infer_schema=False).filter(pl.col("shard") != "accessories").write_csv(table)

    # The sensor sees it: the partition goes, a publish run retires it.
    context = build_sensor_context(instance=home.instance, resources={k: home.resources[k] for k in ("catalog", "data_home", "run_profile")})
    tick = catalog_refresh_sensor(context)
    assert isinstance(tick, SensorResult)
    assert [r.job_name for r in tick.run_requests] == ["publish_pages"]
    assert [list(r.partition_keys) for r in tick.dynamic_partitions_requests] == [["accessories"]]

    stages = run_graph(home.defs, home.instance, run_config=RUN_CONFIG)
    assert "accessories" not in home.instance.get_dynamic_partitions("catalog_shard")
    assert not any("accessories" in s.label for s in stages)
    for name in ("catalog_products", "raw_attributes", "product_attribute_scores"):
        assert home.warehouse.read(f"SELECT count(*) FROM {name} WHERE shard = 'accessories'").item() == 0, name
    pages = home.warehouse.read_table("landing_pages")
    assert not set(pages.get_column("product_id")) & accessories
    removed = set(home.warehouse.read("SELECT slug FROM page_refresh_log WHERE change = 'removed'").get_column("slug"))
    assert removed and removed <= slugs_before and not removed & set(pages.get_column("slug"))
    assert removed <= set(home.warehouse.read_table("retired_slugs").get_column("slug"))
    sitemap = (home.home / "site" / "sitemap.xml").read_text()
    assert not any(f"/{slug}.html" in sitemap for slug in removed)
