import shutil

import polars as pl
import pytest
from dagster import DagsterInstance, SensorResult, SkipReason, build_sensor_context

from pinlanding_assets.defs.resources import CatalogResource, DataHomeResource
from pinlanding_assets.defs.sensors import catalog_refresh_sensor


@pytest.fixture
def catalog_copy(sample_catalog, tmp_path):
    target = tmp_path / "catalog"
    shutil.copytree(sample_catalog, target)
    return target


def tick(instance, catalog_dir, cursor):
    home = DataHomeResource(home=str(catalog_dir.parent / "home"))  # nothing ingested yet: the cursor alone prevents repeats
    context = build_sensor_context(instance=instance, cursor=cursor, resources={"catalog": CatalogResource(location=str(catalog_dir)), "data_home": home})
    result = catalog_refresh_sensor(context)
    if isinstance(result, SensorResult):
        for request in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def test_new_changed_and_unchanged_shards(catalog_copy):
    instance = DagsterInstance.ephemeral()
    table = catalog_copy / "products.csv"
    frame = pl.read_csv(table, infer_schema=False)
    frame.filter(pl.col("shard") != "footwear").write_csv(table)

    first = tick(instance, catalog_copy, None)
    assert sorted(r.partition_key for r in first.run_requests) == ["accessories", "apparel"]
    assert sorted(instance.get_dynamic_partitions("catalog_shard")) == ["accessories", "apparel"]

    assert isinstance(tick(instance, catalog_copy, first.cursor), SkipReason)  # nothing changed

    frame.write_csv(table)  # a new shard appears
    added = tick(instance, catalog_copy, first.cursor)
    assert [r.partition_key for r in added.run_requests] == ["footwear"]
    assert list(added.dynamic_partitions_requests[0].partition_keys) == ["footwear"]
    assert "footwear" in instance.get_dynamic_partitions("catalog_shard")

    edited = frame.with_columns(pl.when(pl.col("id") == "s0001").then(pl.lit("Northfold Men White Oxford Shirt")).otherwise(pl.col("title")).alias("title"))
    edited.write_csv(table)  # one product of one shard changes
    changed = tick(instance, catalog_copy, added.cursor)
    assert [r.partition_key for r in changed.run_requests] == ["apparel"]
    assert changed.run_requests[0].tags["pinlanding/reason"] == "changed"
    assert not changed.dynamic_partitions_requests

    image = catalog_copy / "images" / "s0004.jpg"  # an image replaced in place
    image.write_bytes((catalog_copy / "images" / "s0005.jpg").read_bytes())
    replaced = tick(instance, catalog_copy, changed.cursor)
    shard_of_s0004 = edited.filter(pl.col("id") == "s0004").get_column("shard").item()
    assert [r.partition_key for r in replaced.run_requests] == [shard_of_s0004]


def test_pages_are_published_once_after_a_batch_of_shard_updates_settles():
    """Refresh does not fan out: three shards re-scored together make one request of both
    global assets, not three; a new model alone makes none. (Waiting for shards still
    scoring is shown through the daemon: test_daemon_refresh.py.)"""
    from dagster import AssetKey, AssetMaterialization, evaluate_automation_conditions

    from pinlanding_assets.definitions import defs

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("catalog_shard", ["accessories", "apparel", "footwear"])
    published = {AssetKey("collection_queries"), AssetKey("landing_pages")}

    def materialize(asset: str, partition: str | None = None) -> None:
        instance.report_runless_asset_event(AssetMaterialization(asset_key=asset, partition=partition))

    result = evaluate_automation_conditions(defs=defs, instance=instance)
    assert result.total_requested == 0  # nothing changed: the first tick starts nothing
    for shard in ("accessories", "apparel", "footwear"):
        materialize("product_attribute_scores", shard)
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert {key for key in published if result.get_num_requested(key)} == published  # both, in one tick
    for key in published:
        materialize(key.to_user_string())
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert result.total_requested == 0  # handled: not again
    materialize("clip_model")
    materialize("curated_vocabulary")
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert result.total_requested == 0  # a new model alone does not republish
