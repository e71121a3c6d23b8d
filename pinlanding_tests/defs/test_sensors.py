import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from dagster import DagsterInstance, SensorResult, SkipReason, build_schedule_context, build_sensor_context, validate_run_config

from pinlanding_assets.definitions import defs

from pinlanding_assets.defs.resources import CatalogResource, DataHomeResource, RunProfileResource
from pinlanding_assets.defs.sensors import catalog_refresh_sensor, weekly_model_retrain


@pytest.fixture
def catalog_copy(sample_catalog, tmp_path):
    target = tmp_path / "catalog"
    shutil.copytree(sample_catalog, target)
    return target


def tick(instance, catalog_dir, cursor, run_profile=RunProfileResource()):
    home = DataHomeResource(home=str(catalog_dir.parent / "home"))  # nothing ingested yet: the cursor alone prevents repeats
    resources = {"catalog": CatalogResource(location=str(catalog_dir)), "data_home": home, "run_profile": run_profile}
    context = build_sensor_context(instance=instance, cursor=cursor, resources=resources)
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


def test_runs_the_sensor_and_schedule_start_carry_the_run_profile(catalog_copy, tmp_path):
    profile = tmp_path / "profile.json"
    shipped = Path(__file__).resolve().parents[2] / "data" / "run_configs" / "uncertainty_sampling.json"
    profile.write_text(json.dumps({**json.loads(shipped.read_text()), "shard_scoring": {"ops": {"product_attribute_scores": {"config": {"batch_size": 64}}}}, "train_model": {"ops": {"clip_model": {"config": {"epochs": 2}}}}}))
    first = tick(DagsterInstance.ephemeral(), catalog_copy, None, RunProfileResource(path=str(profile)))
    ops = first.run_requests[0].run_config["ops"]  # shard_refresh = shard_ingest's and shard_scoring's ops
    assert ops["raw_attributes"]["config"]["active_sampling"] == "uncertainty"
    assert ops["product_attribute_scores"]["config"] == {"batch_size": 64} and "clip_model" not in ops
    validate_run_config(defs.resolve_job_def("shard_refresh"), first.run_requests[0].run_config)  # raises when the merged config does not fit the job

    weekly = weekly_model_retrain(build_schedule_context(resources={"run_profile": RunProfileResource(path=str(profile))}))
    assert weekly.run_config == {"ops": {"clip_model": {"config": {"epochs": 2}}}}
    assert tick(DagsterInstance.ephemeral(), catalog_copy, None).run_requests[0].run_config == {}  # no profile: the defaults

    with pytest.raises(FileNotFoundError, match="run profile"):
        tick(DagsterInstance.ephemeral(), catalog_copy, None, RunProfileResource(path=str(tmp_path / "missing.json")))
