"""Metrics, as defined in shared/notes/pinlanding-method.md.

* Attribute Recall@K (the paper's protocol): share of held-out products whose top-K ranked
  vocabulary attributes contain at least one of their ground-truth attributes.
* Per-key top-1 accuracy: the top value of a key is the product's true value.
* Per-attribute precision/recall of the assigned flags.
* Collection P@10: share of a page's top 10 products whose labels carry every attribute of
  the page, averaged over pages.
Ground truth = the catalog's `label_<key>` columns, normalized like the vocabulary.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from .vocabulary import normalize_key, normalize_value


def catalog_label_attributes(products: pl.DataFrame) -> pl.DataFrame:
    """(product_id, key, value) ground truth from the catalog's label_<key> columns."""
    rows = []
    label_cols = [c for c in products.columns if c.startswith("label_")]
    for row in products.select("product_id", *label_cols).iter_rows(named=True):
        for col in label_cols:
            if row[col]:
                key = normalize_key(col.removeprefix("label_"))
                rows.append((row["product_id"], key, normalize_value(key, row[col])))
    return pl.DataFrame(rows, schema={"product_id": pl.String, "key": pl.String, "value": pl.String}, orient="row").unique()


def recall_at_k(scores: np.ndarray, truth: np.ndarray, ks: tuple[int, ...] = (1, 5, 10), rankable: np.ndarray | None = None) -> dict[str, float]:
    """Paper protocol: rank the whole vocabulary per product (only `rankable` columns: the
    ABSENT pseudo-values are not attributes and take no rank)."""
    if rankable is not None:
        scores, truth = scores[:, rankable], truth[:, rankable]
    has_truth = truth.any(axis=1)
    scores, truth = scores[has_truth], truth[has_truth]
    if len(scores) == 0:
        return {f"recall@{k}": float("nan") for k in ks}
    order = np.argsort(-scores, axis=1, kind="stable")
    hits_sorted = np.take_along_axis(truth, order, axis=1)
    return {f"recall@{k}": float(hits_sorted[:, :k].any(axis=1).mean()) for k in ks}


def top1_accuracy_per_key(scores: np.ndarray, truth: np.ndarray, key_slices: dict[str, slice]) -> dict[str, float]:
    out = {}
    for key, sl in key_slices.items():
        has = truth[:, sl].any(axis=1)
        if has.any():
            pred = scores[has, sl].argmax(axis=1)
            out[key] = float(truth[has, sl][np.arange(int(has.sum())), pred].mean())
    return out


def attribute_precision_recall(assigned: np.ndarray, truth: np.ndarray, attributes: pl.DataFrame) -> pl.DataFrame:
    """Per attribute: support (true count), assigned count, precision, recall."""
    tp = (assigned & truth).sum(axis=0)
    n_assigned = assigned.sum(axis=0)
    support = truth.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(n_assigned > 0, tp / np.maximum(n_assigned, 1), np.nan)
        recall = np.where(support > 0, tp / np.maximum(support, 1), np.nan)
    return attributes.select("key", "value").with_columns(
        pl.Series("support", support.astype(np.int64)),
        pl.Series("assigned", n_assigned.astype(np.int64)),
        pl.Series("precision", precision.astype(np.float64)),
        pl.Series("recall", recall.astype(np.float64)),
    )


def top1_confusions(scores: np.ndarray, truth: np.ndarray, attributes: pl.DataFrame, key: str, key_slice: slice) -> pl.DataFrame:
    """For one key: (true value, predicted top-1 value, count) over products with one true
    value of the key, most frequent pairs first."""
    values = attributes.get_column("value").to_numpy()[key_slice]
    part = truth[:, key_slice]
    single = part.sum(axis=1) == 1
    true_idx = part[single].argmax(axis=1)
    pred_idx = scores[single, key_slice].argmax(axis=1)
    frame = pl.DataFrame({"true": values[true_idx].astype(str), "predicted": values[pred_idx].astype(str)}, schema={"true": pl.String, "predicted": pl.String})
    return frame.group_by("true", "predicted").len("count").sort(["count", "true", "predicted"], descending=[True, False, False])


def precision_recall_curve(scores: np.ndarray, truth: np.ndarray, key_slice: slice, rankable: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall of "assign the top value when its score ≥ t" as t falls, over
    products with a true value of the key: (thresholds, precision, recall)."""
    part = scores[:, key_slice].copy()
    if rankable is not None:
        part[:, ~rankable[key_slice]] = -np.inf
    has = truth[:, key_slice].any(axis=1)
    if not has.any():
        return np.zeros(0), np.zeros(0), np.zeros(0)
    top = part[has].max(axis=1)
    correct = truth[has, key_slice][np.arange(int(has.sum())), part[has].argmax(axis=1)]
    order = np.argsort(-top, kind="stable")
    tp = np.cumsum(correct[order])
    precision = tp / np.arange(1, len(order) + 1)
    recall = tp / len(order)
    return top[order], precision, recall


def assignment_precision_per_key(assigned: np.ndarray, truth: np.ndarray, key_slices: dict[str, slice]) -> dict[str, float]:
    """Precision of assigned flags per key, over products that have a label for the key."""
    out = {}
    for key, sl in key_slices.items():
        has = truth[:, sl].any(axis=1)
        n = assigned[has, sl].sum()
        if n:
            out[key] = float((assigned[has, sl] & truth[has, sl]).sum() / n)
    return out


def collection_precision_at_k(pages: pl.DataFrame, collection_attributes: pl.DataFrame, truth: pl.DataFrame, k: int = 10) -> float:
    """Mean over pages of the share of the top-k products whose labels carry every page attribute.

    pages: slug, product_id, rank; collection_attributes: slug, key, value;
    truth: product_id, key, value. Pages whose attributes have no labeled key are skipped.
    """
    labeled_keys = set(truth.get_column("key").unique().to_list())
    attrs = collection_attributes.filter(pl.col("key").is_in(labeled_keys))
    checkable = attrs.group_by("slug").agg(pl.len().alias("n_attrs"))
    top = pages.filter(pl.col("rank") <= k).join(checkable, on="slug")
    if top.is_empty():
        return float("nan")
    matched = (
        top.join(attrs, on="slug")
        .join(truth.with_columns(pl.lit(True).alias("hit")), on=["product_id", "key", "value"], how="left")
        .group_by("slug", "product_id", "n_attrs")
        .agg(pl.col("hit").fill_null(False).sum().alias("hits"))
        .with_columns((pl.col("hits") == pl.col("n_attrs")).alias("relevant"))
    )
    per_page = matched.group_by("slug").agg(pl.col("relevant").mean().alias("p"))
    return float(per_page.get_column("p").mean())
