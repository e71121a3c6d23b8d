"""Scoring on Spark (mapInPandas on executors, the checkpoint inside the function) assigns
exactly what in-process scoring assigns, on the shared local session from conftest and on
Spark Connect; an executor without the project's environment fails saying what it needs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from pinlanding_assets.core.catalog import load_catalog, locate_catalog
from pinlanding_assets.core.compute import ComputeSettings, resolve_compute
from pinlanding_assets.core.clip_model import ModelSpec, build_encoder, load_encoder, save_encoder
from pinlanding_assets.core.scoring import Calibration, score_products
from pinlanding_assets.core.spark_scoring import checkpoint_payload, encode_partitions, spark_embedder
from pinlanding_assets.core.training import AttributeSpace


def scoring_setup(sample_catalog: Path, tmp_path: Path):
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
    return products, saved


def assert_same_scoring(session, products: pl.DataFrame, saved) -> None:
    compute = ComputeSettings()  # the pipeline's default, resolved alike in this process and on the executors
    encoder, extra = load_encoder(saved.directory, resolve_compute(compute))
    local = score_products(encoder, extra, saved.version, products, pl.DataFrame(), batch_size=16)
    on_spark = score_products(encoder, extra, saved.version, products, pl.DataFrame(), batch_size=16, embedder=spark_embedder(session, saved.directory, saved.version, batch_size=16, compute=compute))

    assert on_spark.encoded == local.encoded == products.height
    key = ["product_id", "key", "value"]
    a, b = local.scores.sort(key), on_spark.scores.sort(key)
    assert a.select(*key, "assigned").equals(b.select(*key, "assigned"))
    assert 0 < a.get_column("assigned").sum() < a.height  # the comparison is not vacuous
    np.testing.assert_allclose(a.get_column("probability").to_numpy(), b.get_column("probability").to_numpy(), atol=1e-5)
    emb_local = np.stack(local.new_embeddings.sort("product_id").get_column("embedding").to_list())
    emb_spark = np.stack(on_spark.new_embeddings.sort("product_id").get_column("embedding").to_list())
    np.testing.assert_allclose(emb_local, emb_spark, atol=1e-5)


def test_spark_scoring_assigns_like_in_process_scoring(spark, sample_catalog: Path, tmp_path: Path) -> None:
    products, saved = scoring_setup(sample_catalog, tmp_path)
    assert_same_scoring(spark, products, saved)


def test_spark_connect_scoring_assigns_like_in_process_scoring(spark_connect, sample_catalog: Path, tmp_path: Path) -> None:
    """Issue 13 item 4: a broadcast needs `sparkContext`, which a Connect session has not."""
    products, saved = scoring_setup(sample_catalog, tmp_path)
    assert_same_scoring(spark_connect, products.head(24), saved)


def test_an_executor_without_the_environment_says_what_it_needs(sample_catalog: Path, tmp_path: Path, monkeypatch) -> None:
    """The mapInPandas function run as an executor without torch runs it: the error names
    what is missing and the recipe (spark.archives), not a bare import error."""
    _, saved = scoring_setup(sample_catalog, tmp_path)
    encode = encode_partitions(saved.version, checkpoint_payload(saved.directory), 16, 1)
    monkeypatch.setitem(sys.modules, "torch", None)  # "import torch" fails as on an executor without it
    with pytest.raises(RuntimeError, match=r"cannot import torch.*spark\.archives=.*#environment"):
        next(encode(iter([pd.DataFrame({"row": [0], "image_path": ["x.jpg"], "title": ["a shirt"]})])))
