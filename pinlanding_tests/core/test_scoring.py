"""Calibration, thresholds, assignment, and shard scoring with the embedding cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pinlanding_assets.core.catalog import load_catalog, locate_catalog
from pinlanding_assets.core.clip_model import ModelSpec, build_encoder, load_encoder, save_encoder
from pinlanding_assets.core.scoring import (
    Calibration,
    assign,
    choose_thresholds,
    evidence_index,
    evidence_phrases,
    fit_calibration,
    local_embedder,
    score_products,
    ProductEvidence,
    product_evidence,
    ProductScores,
    scores_frame,
)
from pinlanding_assets.core.training import ABSENT, AttributeSpace

SLICES = {"color": slice(0, 3), "pattern": slice(3, 5)}


def test_log_frequency_prior_corrects_bias_toward_rare_values() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    true = rng.choice(3, size=n, p=[0.8, 0.15, 0.05])  # value 0 common, 2 rare
    sim = rng.normal(0, 0.1, size=(n, 3)) + 0.05 * np.eye(3)[true]
    sim[:, 2] += 0.06  # the encoder over-ranks the rare value
    truth = np.eye(3, dtype=bool)[true]
    log_prior = np.log(np.array([0.8, 0.15, 0.05]))
    best, ablation = fit_calibration(sim, truth, {"color": slice(0, 3)}, 10.0, log_prior)
    assert best.prior_weight > 0
    assert ablation[f"prior_weight={best.prior_weight}"] > ablation["prior_weight=0.0"] + 0.05
    probs = best.probabilities(sim, {"color": slice(0, 3)})
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def vocabulary_of(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    """A curated vocabulary: (key, raw value, canonical), all kept."""
    return pl.DataFrame(rows, schema={"key": pl.String, "value": pl.String, "canonical": pl.String}, orient="row").with_columns(pl.lit("kept").alias("status"))


def test_text_evidence_reads_products_like_the_teacher() -> None:
    attributes = pl.DataFrame({"key": ["color"] * 4 + ["pattern"] * 2 + ["product_type"] * 2, "value": ["blue", "grey", "navy blue", "red", "striped", ABSENT, "shirt", "shoe"]})
    vocabulary = vocabulary_of([("color", v, v) for v in ("blue", "grey", "navy blue", "red")] + [("pattern", "stripes", "striped"), ("product_type", "shirt", "shirt"), ("product_type", "shoes", "shoe")])
    index = evidence_index(evidence_phrases(vocabulary))
    texts = [
        {"title": "Nike Women Grey Navy Blue Shoes"},
        {"title": "Navy Striped Shirt"},  # "navy" is the lexicon's spelling of navy blue
        {"title": "Redwood Bluetooth Speaker"},
        {"title": ""},
        {"title": "Shirt (none)", "description": "A red shirt with stripes"},
        {"title": "Brand Shirt Shoe"},
    ]
    assert product_evidence(texts, index, attributes).text.tolist() == [
        [0, 1, 0, 0, 0, 0, 0, 1],  # grey comes first; blue inside "navy blue" is not blue; "Shoes" folds to shoe
        [0, 0, 1, 0, 1, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 0, 0],  # "red" in "Redwood", "blue" in "Bluetooth": not whole words
        [0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 1, 1, 0, 1, 0],  # the description adds what the title does not say; ABSENT never
        [0, 0, 0, 0, 0, 0, 0, 1],  # the product type is the title's last-named type
    ]


def test_pixel_colour_is_evidence_only_where_the_text_names_no_colour() -> None:
    attributes = pl.DataFrame({"key": ["color"] * 3, "value": ["black", "navy blue", "red"]})
    index = evidence_index(evidence_phrases(vocabulary_of([("color", v, v) for v in ("black", "navy blue", "red")])))
    texts = [
        {"title": "Brand Shirt", "pixel_color": "navy", "pixel_weight": 4.0},  # the lexicon's spelling of navy blue
        {"title": "Brand Red Shirt", "pixel_color": "black", "pixel_weight": 4.0},  # the text decides
        {"title": "Brand Shirt", "pixel_color": "black", "pixel_weight": 0.0},  # a namer worth nothing
    ]
    evidence = product_evidence(texts, index, attributes)
    assert evidence.pixels.tolist() == [[0, 4, 0], [0, 0, 0], [0, 0, 0]]
    assert evidence.text.tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 0]]
    # Added as it is: it moves the choice, it does not make it certain.
    probs = Calibration(10.0, 0.0, (0.0, 0.0, 0.0), {"color": 20.0}).probabilities(np.zeros((3, 3)), {"color": slice(0, 3)}, evidence)
    assert probs[0].argmax() == 1 and 0.9 < probs[0, 1] < 0.99
    assert probs[1, 2] > 0.999999


def test_evidence_weight_is_fitted_per_key_and_helps_only_where_the_text_is_right() -> None:
    # colour: the encoder confuses values 0 and 1, the title names the right one -> weight > 0;
    # pattern: the title names a random value -> weight 0.
    rng = np.random.default_rng(2)
    n = 2000
    true_color, true_pattern = rng.integers(0, 3, size=n), rng.integers(0, 2, size=n)
    sim = rng.normal(0, 0.05, size=(n, 5))
    sim[np.arange(n), true_color] += 0.04
    sim[np.arange(n), 3 + true_pattern] += 0.1
    truth = np.concatenate([np.eye(3, dtype=bool)[true_color], np.eye(2, dtype=bool)[true_pattern]], axis=1)
    mentions = np.concatenate([np.eye(3)[true_color], np.eye(2)[rng.integers(0, 2, size=n)]], axis=1).astype(np.float32)
    mentions = ProductEvidence(mentions, np.zeros_like(mentions))
    best, ablation = fit_calibration(sim, truth, SLICES, 30.0, np.zeros(5), mentions)
    assert best.evidence_weight.get("color", 0) > 0 and best.evidence_weight.get("pattern", 0) == 0
    assert ablation[f"evidence_weight[color]={best.evidence_weight['color']}"] > ablation["evidence_weight[color]=0.0"] + 0.05
    with_titles, without = best.probabilities(sim, SLICES, mentions), best.probabilities(sim, SLICES)
    np.testing.assert_allclose(with_titles[:, :3].sum(axis=1), 1.0, rtol=1e-5)
    accuracy = lambda p: (p[:, :3].argmax(axis=1) == true_color).mean()  # noqa: E731
    assert accuracy(with_titles) > accuracy(without) + 0.05
    restored = Calibration(**{**best.to_dict(), "log_prior": tuple(best.log_prior)})
    np.testing.assert_array_equal(restored.probabilities(sim, SLICES, mentions), with_titles)


def test_thresholds_reach_target_precision_on_validation() -> None:
    rng = np.random.default_rng(1)
    n = 3000
    true = rng.integers(0, 3, size=n)
    confidence = rng.uniform(0.34, 1.0, size=n)
    correct = rng.uniform(size=n) < confidence  # more confident -> more often right
    pred = np.where(correct, true, (true + 1) % 3)
    probs = np.full((n, 3), 0.0, dtype=np.float32)
    probs[np.arange(n), pred] = confidence
    truth = np.eye(3, dtype=bool)[true]
    thresholds = choose_thresholds(probs, truth, {"color": slice(0, 3)}, target_precision=0.9)
    chosen = probs.max(axis=1) >= thresholds["color"]
    assert chosen.sum() > 200
    assert correct[chosen].mean() >= 0.9


def test_assignment_caps_values_per_key_and_never_assigns_absent() -> None:
    probs = np.array([[0.5, 0.4, 0.1, 0.3, 0.7], [0.2, 0.3, 0.5, 0.9, 0.1]], dtype=np.float32)
    assignable = np.array([True, True, True, True, False])  # pattern: (none) is column 4
    one = assign(probs, SLICES, {"color": 0.3, "pattern": 0.2}, 1, assignable)
    assert one.tolist() == [[True, False, False, False, False], [False, False, True, True, False]]
    two = assign(probs, SLICES, {"color": 0.3, "pattern": 0.2}, 2, assignable)
    assert two[0, :3].tolist() == [True, True, False]
    assert not assign(probs, SLICES, {"color": 0.99, "pattern": 0.99}, 2, assignable).any()


def test_scores_frame_is_every_product_times_every_attribute() -> None:
    attributes = pl.DataFrame({"key": ["color", "color"], "value": ["black", "white"]})
    sim = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], dtype=np.float32)
    frame = scores_frame(["a", "b", "c"], attributes, ProductScores(sim, sim, sim / 2, sim > 0.35))
    assert frame.height == 6
    assert frame.filter(pl.col("assigned")).select("product_id", "value").rows() == [("b", "white"), ("c", "black"), ("c", "white")]
    assert frame.row(3) == ("b", "color", "white", pytest.approx(0.4), pytest.approx(0.4), pytest.approx(0.2), True)


@pytest.fixture(scope="module")
def saved_model(sample_catalog: Path, tmp_path_factory):
    """An (untrained) encoder saved with a small vocabulary, calibration and thresholds:
    enough to test the scoring mechanics without paying for training."""
    encoder = build_encoder(ModelSpec(), seed=0)
    space = AttributeSpace(pl.DataFrame({"key": ["color", "color", "pattern", "pattern"], "value": ["black", "white", "striped", ABSENT], "frequency": [30, 20, 5, 45]}))
    extra = {
        "attributes": space.attributes.to_dicts(),
        "calibration": Calibration(20.0, 0.5, tuple(space.log_prior())).to_dict(),
        "thresholds": {"color": 0.0, "pattern": 0.0},
        "max_values_per_key": 1,
        "evidence_phrases": [["color", "black", "black"], ["color", "white", "white"], ["pattern", "striped", "striped"]],
        "teacher_columns": ["category"],
    }
    saved = save_encoder(encoder, tmp_path_factory.mktemp("model") / "ckpt", extra)
    loaded, loaded_extra = load_encoder(saved.directory)
    products = load_catalog(locate_catalog(sample_catalog)).products.head(40)
    return loaded, loaded_extra, saved, products


class CountingEmbedder:
    def __init__(self, encoder):
        self.inner = local_embedder(encoder, batch_size=16)
        self.calls: list[int] = []

    def __call__(self, paths, titles, progress=None):
        self.calls.append(len(paths))
        return self.inner(paths, titles, progress)


def test_refresh_reencodes_only_changed_products(saved_model) -> None:
    encoder, extra, saved, products = saved_model
    embedder = CountingEmbedder(encoder)
    progress: list[tuple[int, int]] = []
    first = score_products(encoder, extra, saved.version, products, pl.DataFrame(), embedder=embedder, progress=lambda d, t: progress.append((d, t)))
    assert (first.encoded, first.reused) == (40, 0) and first.products_per_second > 0
    assert progress[-1] == (40, 40) and len(progress) == 3  # batches of 16: progress per batch
    assert first.scores.height == 40 * 4
    # Exactly one assigned value per key for every product, never the ABSENT one.
    assigned = first.scores.filter(pl.col("assigned"))
    assert assigned.filter(pl.col("value") == ABSENT).is_empty()
    assert assigned.group_by("product_id", "key").len().get_column("len").max() == 1

    # Nothing changed: nothing is encoded, the scores are the same.
    again = score_products(encoder, extra, saved.version, products, first.new_embeddings, embedder=embedder)
    assert (again.encoded, again.reused) == (0, 40) and embedder.calls == [40]
    assert again.scores.equals(first.scores)

    # Two products changed (a new title, a new image): only those two are encoded.
    changed = products.with_columns(
        pl.when(pl.col("product_id") == products.item(3, "product_id")).then(pl.lit("Brand New Title Shirt")).otherwise(pl.col("title")).alias("title"),
        pl.when(pl.col("product_id") == products.item(3, "product_id")).then(pl.lit("new-text-hash")).otherwise(pl.col("text_hash")).alias("text_hash"),
        pl.when(pl.col("product_id") == products.item(7, "product_id")).then(pl.lit(products.item(8, "image_path"))).otherwise(pl.col("image_path")).alias("image_path"),
        pl.when(pl.col("product_id") == products.item(7, "product_id")).then(pl.lit(products.item(8, "image_hash"))).otherwise(pl.col("image_hash")).alias("image_hash"),
    )
    refreshed = score_products(encoder, extra, saved.version, changed, first.new_embeddings, embedder=embedder)
    assert (refreshed.encoded, refreshed.reused) == (2, 38) and embedder.calls == [40, 2]
    assert set(refreshed.new_embeddings.get_column("product_id")) == {products.item(3, "product_id"), products.item(7, "product_id")}
    unchanged = [pid for pid in products.get_column("product_id") if pid not in (products.item(3, "product_id"), products.item(7, "product_id"))]
    same = lambda frame: frame.filter(pl.col("product_id").is_in(unchanged)).sort("product_id", "key", "value")  # noqa: E731
    assert same(refreshed.scores).equals(same(first.scores))

    # Another model version never reuses these embeddings.
    other = score_products(encoder, extra, "other-version", products, first.new_embeddings, embedder=embedder)
    assert other.encoded == 40
