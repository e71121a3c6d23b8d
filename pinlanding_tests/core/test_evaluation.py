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
    expand_to_vocabulary,
    majority_mapping,
    mean_average_precision,
    precision_recall_curve,
    recall_at_k,
    teacher_agreement,
    top1_accuracy_per_key,
    top1_confusions,
)
from pinlanding_assets.core.plots import compared_calls, confusion_png, markdown_image, precision_recall_png, quality_vs_calls_panels_png
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


def rows(*triples: tuple[str, str, str]) -> pl.DataFrame:
    return pl.DataFrame(list(triples), schema={"product_id": pl.String, "key": pl.String, "value": pl.String}, orient="row")


def test_labels_are_mapped_onto_a_discovered_vocabulary_by_rule() -> None:
    vocabulary = pl.DataFrame({"key": ["product_type"] * 4 + ["color"], "value": ["shoe", "casual shoe", "deo", "shirt", "navy blue"]})
    labels = rows(("1", "product_type", "casual shoe"), ("2", "product_type", "deodorant"), ("3", "product_type", "t-shirt"), ("4", "color", "blue"))
    strict = expand_to_vocabulary(labels, vocabulary, "strict")
    assert strict.sort("product_id").rows() == [("1", "product_type", "casual shoe")]
    lenient = expand_to_vocabulary(labels, vocabulary, "lenient")
    assert sorted(lenient.rows()) == [("1", "product_type", "casual shoe"), ("1", "product_type", "shoe")]  # never navy blue for blue
    mapping = pl.DataFrame({"key": ["product_type"], "value": ["deo"], "label": ["deodorant"], "share": [0.9], "products": [40]})
    mapped = expand_to_vocabulary(labels, vocabulary, "mapped", mapping)
    assert ("2", "product_type", "deo") in mapped.rows() and ("3", "product_type", "shirt") not in mapped.rows()


def test_majority_mapping_learns_only_clear_majorities() -> None:
    teacher = rows(*[(str(i), "product_type", "deo") for i in range(10)], *[(f"s{i}", "product_type", "shoe") for i in range(10)])
    labels = rows(*[(str(i), "product_type", "deodorant" if i < 9 else "perfume") for i in range(10)], *[(f"s{i}", "product_type", ["casual shoe", "sports shoe"][i % 2]) for i in range(10)])
    mapping = majority_mapping(teacher, labels)
    assert mapping.select("value", "label").rows() == [("deo", "deodorant")]  # shoe: 50/50 is no majority to learn
    assert mapping.item(0, "share") == pytest.approx(0.9)


def test_a_label_no_vocabulary_value_names_is_a_miss() -> None:
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    truth = np.array([[1, 0], [0, 1], [0, 0]], dtype=bool)  # product 3 is labeled, but with a value outside the vocabulary
    labeled = {"color": np.array([True, True, True])}
    assert top1_accuracy_per_key(scores, truth, {"color": slice(0, 2)}) == {"color": 1.0}
    assert top1_accuracy_per_key(scores, truth, {"color": slice(0, 2)}, labeled) == {"color": pytest.approx(2 / 3)}
    assert recall_at_k(scores, truth, ks=(1,), has_label=labeled["color"]) == {"recall@1": pytest.approx(2 / 3)}


def test_mean_average_precision_at_key_level() -> None:
    # color (cols 0-1) and pattern (2-3); product 1: color right at rank 1, pattern right at rank 3.
    scores = np.array([[0.9, 0.1, 0.2, 0.5]])
    truth = np.array([[1, 0, 1, 0]], dtype=bool)
    labeled = {"color": np.array([True]), "pattern": np.array([True]), "season": np.array([True])}  # season: not in the vocabulary
    value = mean_average_precision(scores, truth, SLICES | {"pattern": slice(2, 4)}, labeled)
    assert value == pytest.approx((1 / 1 + 2 / 3) / 3)


def test_teacher_agreement_reports_coverage_and_agreement() -> None:
    products = pl.DataFrame({"product_id": ["1", "2", "3", "4"], "label_product_type": ["Casual Shoes", "Watches", "Watches", None], "label_color": ["black", "red", None, None]})
    answers = rows(("1", "product_type", "shoe"), ("2", "product_type", "bag"), ("4", "product_type", "watch"), ("1", "color", "black"))
    figures = teacher_agreement(answers, products)
    assert figures["product_type"] == {"coverage": 0.75, "agreement": 0.5, "checked": 2}
    assert figures["color"] == {"coverage": 0.25, "agreement": 1.0, "checked": 1}


def test_quality_vs_calls_plot_labels_only_the_calls_every_method_was_measured_at() -> None:
    curves = {"random": [(250, 0.47, 0.01), (500, 0.52, 0.0), (1000, 0.54, 0.0)], "uncertainty": [(250, 0.47, 0.01), (354, 0.51, 0.0), (500, 0.54, 0.0), (707, 0.55, 0.0), (1000, 0.553, 0.0)]}
    assert compared_calls(curves) == {250, 500, 1000}
    assert compared_calls({"random": curves["random"]}) == {250, 500, 1000}
    assert compared_calls({}) == set()
    png = quality_vs_calls_panels_png({"mean top-1": curves, "3 keys": curves}, "random vs uncertainty")
    assert png.startswith(b"\x89PNG")
