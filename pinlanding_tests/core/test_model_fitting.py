"""The model stage on a catalog without labels: the offline teacher labels it from content,
held-out teacher answers (silver labels) judge the model, and a bad model fails the gates."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from pinlanding_assets.core.catalog import label_columns, load_catalog, locate_catalog
from pinlanding_assets.core.clip_model import ModelSpec
from pinlanding_assets.core.extraction import OfflineExtractor
from pinlanding_assets.core.evaluation import SILVER_LABELS
from pinlanding_assets.core.gates import GateConfig, model_gates
from pinlanding_assets.core.model_fitting import ENCODER_ONLY, PUBLISHED, AssignmentConfig, fit_dual_encoder, heldout_candidates, training_inputs
from pinlanding_assets.core.training import TrainingConfig
from pinlanding_assets.core.vocabulary import curate_vocabulary


@pytest.fixture(scope="module")
def label_free_inputs(sample_catalog: Path):
    """The sample catalog with its label columns removed, every product taught offline."""
    products = load_catalog(locate_catalog(sample_catalog)).products
    products = products.drop(label_columns(products)).with_columns(pl.lit(True).alias("in_sample"))
    answers = pl.concat(
        OfflineExtractor.for_shard(part).extract(part).attributes for _, part in products.group_by("shard", maintain_order=True)
    )
    vocabulary = curate_vocabulary(answers)
    return training_inputs(products, answers, vocabulary, heldout_candidates(products, 100, 0))


def fit(inputs, tmp_path: Path, epochs: int, min_steps: int):
    training = TrainingConfig(epochs=epochs, min_steps=min_steps, batch_size=64, test_share=0.2, seed=3)
    return fit_dual_encoder(inputs, ModelSpec(), training, AssignmentConfig(), tmp_path / f"model-{epochs}", baseline_max_products=50)


def test_without_labels_the_model_is_judged_on_silver_labels_and_a_bad_model_fails(label_free_inputs, tmp_path: Path) -> None:
    assert label_free_inputs.heldout.is_empty()  # no catalog labels to evaluate against
    trained = fit(label_free_inputs, tmp_path, epochs=6, min_steps=60)
    assert list(trained.evaluations) == [SILVER_LABELS]
    silver = trained.evaluations[SILVER_LABELS]
    assert silver[PUBLISHED].n_products >= 40
    assert silver[PUBLISHED].top1["product_type"] > 0.9 and silver[ENCODER_ONLY].recall["recall@1"] > silver["frequency_prior"].recall["recall@1"]
    gates = {g.name: g for g in model_gates(trained, GateConfig())}
    assert all(g.passed for g in gates.values()), [g.description for g in gates.values()]
    assert SILVER_LABELS in gates["model_beats_prior"].description

    # Trained on deliberately wrong answers (every teacher value swapped for another value of
    # its key; its silver labels are the same wrong answers): what the products' own text
    # says contradicts the model, and the key-accuracy gate blocks it.
    wrong = fit(replace(label_free_inputs, labels=swapped_values(label_free_inputs.labels)), tmp_path, epochs=6, min_steps=60)
    blocking = {g.name for g in model_gates(wrong, GateConfig()) if g.blocks}
    assert "heldout_key_accuracy" in blocking, blocking

    # Not trained at all: the text evidence alone would still look good on silver labels,
    # but the encoder does not beat the frequency prior, and that gate fails.
    untrained = fit(label_free_inputs, tmp_path, epochs=0, min_steps=0)
    beats = {g.name: g for g in model_gates(untrained, GateConfig())}["model_beats_prior"]
    assert not beats.passed, beats.description
    assert beats.value < beats.metadata["prior_recall@1"] + GateConfig.min_lift_over_prior


def swapped_values(labels: pl.DataFrame) -> pl.DataFrame:
    """Each (key, value) replaced by the next value of its key, in sorted order."""
    values = labels.select("key", "value").unique().sort("key", "value")
    nxt = values.with_columns(pl.col("value").shift(-1).over("key").fill_null(pl.col("value").first().over("key")).alias("wrong"))
    return labels.join(nxt, on=["key", "value"]).select("product_id", "key", pl.col("wrong").alias("value"))


def test_gates_warn_instead_of_judging_on_too_little_evidence(label_free_inputs, tmp_path: Path) -> None:
    tiny = fit(label_free_inputs, tmp_path, epochs=1, min_steps=4)
    gates = model_gates(tiny, GateConfig(min_checked=10_000))
    assert all(not g.passed and not g.blocking and "not enough evidence" in g.description for g in gates)
