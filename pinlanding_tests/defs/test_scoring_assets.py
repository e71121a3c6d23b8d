"""`product_attribute_scores` through Dagster: progress and throughput in metadata, a
refresh re-encodes only changed products, and the Spark engine assigns the same values."""

import csv

import polars as pl
import pytest

from pinlanding_assets.core import model_inputs

from .test_model_assets import TrainedHome, trained_home  # noqa: F401  (session fixture)


def _scoring(home: TrainedHome, shard: str, engine: str = "local"):
    result = home.run("shard_scoring", shard, {"ops": {"product_attribute_scores": {"config": {"engine": engine, "batch_size": 64, "min_assignment_precision": 0.0}}}})
    meta = next(e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == "product_attribute_scores").materialization.metadata
    return {k: v.value for k, v in meta.items()}


def _assigned(home: TrainedHome, shard: str) -> pl.DataFrame:
    return home.warehouse.read("SELECT product_id, key, value, assigned, probability FROM product_attribute_scores WHERE shard = ? ORDER BY ALL", [shard])


def test_scoring_refresh_and_spark_engine(trained_home: TrainedHome, monkeypatch) -> None:  # noqa: F811
    home = trained_home
    # Ingest prepared the towers' inputs: the first scoring decodes and tokenizes nothing.
    with monkeypatch.context() as patched:
        patched.setattr(model_inputs, "load_images", lambda *a: pytest.fail("scoring decoded an image ingest prepared"))
        patched.setattr(model_inputs, "clip_tokenizer", lambda *a: pytest.fail("scoring tokenized a title ingest prepared"))
        first = _scoring(home, "footwear")
    assert first["encoded"] == first["products"] > 0 and first["reused_embeddings"] == 0
    assert first["products_per_second"] > 0 and first["engine"] == "local"
    local = _assigned(home, "footwear")
    assert local.height == first["score_rows"] and local.get_column("assigned").sum() == first["assigned_rows"] > 0

    again = _scoring(home, "footwear")
    assert (again["encoded"], again["reused_embeddings"]) == (0, first["products"])

    # One product's title changes in the catalog: ingest sees it, scoring re-encodes just it.
    rows = list(csv.DictReader((home.catalog / "products.csv").open(newline="")))
    target = next(r for r in rows if r["shard"] == "footwear")
    target["title"] = target["title"] + " Limited Edition"
    with (home.catalog / "products.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    home.run("shard_ingest", "footwear")
    refreshed = _scoring(home, "footwear")
    assert (refreshed["encoded"], refreshed["reused_embeddings"]) == (1, first["products"] - 1)

    # The Spark engine (mapInPandas on the spark resource) assigns exactly the same values.
    home.warehouse.replace_table("product_embeddings", home.warehouse.read_table("product_embeddings").head(0))
    local_after = _assigned(home, "footwear")
    on_spark = _scoring(home, "footwear", engine="spark")
    assert on_spark["encoded"] == first["products"] and on_spark["engine"] == "spark"
    spark_rows = _assigned(home, "footwear")
    assert spark_rows.select("product_id", "key", "value", "assigned").equals(local_after.select("product_id", "key", "value", "assigned"))
