"""Metrics: the paper's Recall@K, per-key top-1, per-attribute precision/recall, PR curves,
confusions, and the catalog ground truth."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pinlanding_assets.core.evaluation import (
    assignment_precision_per_key,
    attribute_precision_recall,
    catalog_label_attributes,
    collection_precision_at_k,
    precision_recall_curve,
    recall_at_k,
    top1_accuracy_per_key,
    top1_confusions,
)
from pinlanding_assets.core.plots import confusion_png, markdown_image, precision_recall_png
from pinlanding_assets.core.training import AttributeSpace

ATTRS = pl.DataFrame({"key": ["color", "color", "color", "pattern", "pattern"], "value": ["black", "red", "white", "(none)", "striped"], "frequency": [5, 3, 2, 6, 4]})
SLICES = {"color": slice(0, 3), "pattern": slice(3, 5)}


def test_recall_at_k_is_any_true_attribute_in_top_k_over_the_vocabulary() -> None:
    scores = np.array([[0.9, 0.1, 0.0, 0.8, 0.2], [0.1, 0.2, 0.3, 0.9, 0.0], [0.5, 0.4, 0.3, 0.2, 0.1]])
    truth = np.array([[0, 1, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], dtype=bool)  # last: no labels
    assert recall_at_k(scores, truth, ks=(1, 3, 5)) == {"recall@1": 0.0, "recall@3": 0.0, "recall@5": 1.0}
    # ABSENT columns are not attributes: they take no rank.
    rankable = np.array([True, True, True, False, True])
    assert recall_at_k(scores, truth, ks=(2, 3, 4), rankable=rankable) == {"recall@2": 0.0, "recall@3": 0.5, "recall@4": 1.0}


def test_top1_per_key_and_assignment_precision() -> None:
    scores = np.array([[0.9, 0.1, 0.0, 0.2, 0.8], [0.1, 0.2, 0.7, 0.9, 0.0]])
    truth = np.array([[1, 0, 0, 0, 1], [0, 1, 0, 1, 0]], dtype=bool)
    assert top1_accuracy_per_key(scores, truth, SLICES) == {"color": 0.5, "pattern": 1.0}
    assigned = scores > 0.75
    assert assignment_precision_per_key(assigned, truth, SLICES) == {"color": 1.0, "pattern": 1.0}
    table = attribute_precision_recall(assigned, truth, ATTRS)
    assert table.filter(pl.col("value") == "red").row(0, named=True) | {} == {"key": "color", "value": "red", "support": 1, "assigned": 0, "precision": pytest.approx(np.nan, nan_ok=True), "recall": 0.0}


def test_precision_recall_curve_and_confusions() -> None:
    scores = np.array([[0.9, 0.1, 0.0, 0, 0], [0.2, 0.7, 0.1, 0, 0], [0.6, 0.3, 0.1, 0, 0], [0.1, 0.1, 0.8, 0, 0]])
    truth = np.array([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0]], dtype=bool)
    cut, precision, recall = precision_recall_curve(scores, truth, SLICES["color"])
    assert cut.tolist() == [0.9, 0.8, 0.7, 0.6]
    assert precision.tolist() == [1.0, 1.0, 1.0, 0.75] and recall.tolist() == [0.25, 0.5, 0.75, 0.75]
    confusions = top1_confusions(scores, truth, ATTRS, "color", SLICES["color"])
    assert confusions.rows() == [("black", "black", 1), ("red", "black", 1), ("red", "red", 1), ("white", "white", 1)]


def test_plots_are_png_and_embed_in_markdown() -> None:
    rng = np.random.default_rng(0)
    space = AttributeSpace(ATTRS)
    truth = np.zeros((50, 5), dtype=bool)
    truth[np.arange(50), rng.integers(0, 3, 50)] = True
    truth[np.arange(50), 3 + rng.integers(0, 2, 50)] = True
    probs = rng.uniform(size=(50, 5)) + truth * 0.5
    for png in (precision_recall_png(probs, truth, space, {"color": 0.9, "pattern": 0.8}), confusion_png(probs, truth, space)):
        assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert markdown_image(b"\x89PNG", "x").startswith("![x](data:image/png;base64,")


def test_catalog_labels_are_normalized_like_the_vocabulary() -> None:
    products = pl.DataFrame({"product_id": ["1", "2"], "label_product_type": ["Tshirts", None], "label_color": ["Navy Blue", "grey"]})
    truth = catalog_label_attributes(products).sort("product_id", "key")
    assert truth.rows() == [("1", "color", "navy blue"), ("1", "product_type", "t-shirt"), ("2", "color", "grey")]


def test_collection_precision_at_k_signature_kept() -> None:
    pages = pl.DataFrame({"slug": ["a", "a"], "product_id": ["1", "2"], "rank": [1, 2]})
    attrs = pl.DataFrame({"slug": ["a"], "key": ["color"], "value": ["black"]})
    truth = pl.DataFrame({"product_id": ["1", "2"], "key": ["color", "color"], "value": ["black", "red"]})
    assert collection_precision_at_k(pages, attrs, truth, k=10) == 0.5
