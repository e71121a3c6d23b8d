"""Scoring on Spark (mapInPandas on executors, checkpoint broadcast) assigns exactly what
in-process scoring assigns. Uses the shared local session from conftest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pinlanding_assets.core.catalog import load_catalog, locate_catalog
from pinlanding_assets.core.clip_model import ModelSpec, build_encoder, load_encoder, save_encoder
from pinlanding_assets.core.scoring import Calibration, score_products
from pinlanding_assets.core.spark_scoring import spark_embedder
from pinlanding_assets.core.training import AttributeSpace


def test_spark_scoring_assigns_like_in_process_scoring(spark, sample_catalog: Path, tmp_path: Path) -> None:
    products = load_catalog(locate_catalog(sample_catalog)).products.head(60)
    attributes = pl.DataFrame({"key": ["color"] * 4 + ["product_type"] * 3, "value": ["black", "blue", "red", "white", "shirt", "shoe", "watch"], "frequency": [9, 5, 3, 4, 6, 5, 2]})
    space = AttributeSpace(attributes)
    extra = {
        "attributes": space.attributes.to_dicts(),
        "calibration": Calibration(30.0, 0.5, tuple(space.log_prior()), {"color": 2.0}).to_dict(),
        "thresholds": {"color": 0.3, "product_type": 0.4},
        "max_values_per_key": 1,
        "evidence_phrases": [["color", v, v] for v in ("black", "blue", "red", "white")],
    }
    saved = save_encoder(build_encoder(ModelSpec(), seed=2), tmp_path / "ckpt", extra)
    encoder, extra = load_encoder(saved.directory)

    local = score_products(encoder, extra, saved.version, products, pl.DataFrame(), batch_size=16)
    on_spark = score_products(encoder, extra, saved.version, products, pl.DataFrame(), batch_size=16, embedder=spark_embedder(spark, saved.directory, saved.version, batch_size=16))

    assert on_spark.encoded == local.encoded == 60
    key = ["product_id", "key", "value"]
    a, b = local.scores.sort(key), on_spark.scores.sort(key)
    assert a.select(*key, "assigned").equals(b.select(*key, "assigned"))
    assert 0 < a.get_column("assigned").sum() < a.height  # the comparison is not vacuous
    np.testing.assert_allclose(a.get_column("probability").to_numpy(), b.get_column("probability").to_numpy(), atol=1e-5)
    emb_local = np.stack(local.new_embeddings.sort("product_id").get_column("embedding").to_list())
    emb_spark = np.stack(on_spark.new_embeddings.sort("product_id").get_column("embedding").to_list())
    np.testing.assert_allclose(emb_local, emb_spark, atol=1e-5)
