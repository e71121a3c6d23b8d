"""Metrics, as defined in shared/notes/pinlanding-method.md.

* Attribute Recall@K (the paper's protocol): share of held-out products whose top-K ranked
  vocabulary attributes contain at least one of their ground-truth attributes.
* Per-key top-1 accuracy: the top value of a key is the product's true value.
* Per-attribute precision/recall of the assigned flags.
* Collection P@10: share of a page's top 10 products whose labels carry every attribute of
  the page, averaged over pages.
* Mean average precision over the vocabulary (per product, the keys it has a label for,
  each found at the rank of its first right value), beside R@1: both separate a trained
  model from the frequency prior, which Recall@10 on a small vocabulary does not.

Ground truth = the catalog's `label_<key>` columns, normalized like the vocabulary, or, for
a catalog without labels, the teacher's answers on held-out products (silver labels).
Discovered values (a content-first vocabulary says "shoe" where the catalog says "Casual
Shoes") are mapped onto labels by `expand_to_vocabulary` under a rule: "strict" (same
words), "lenient" (`text_rules.values_match`: a coarser or finer name of the same thing,
spelling variants), or "mapped": lenient, or the label that most of the labeled sample's
products given that value carry (`majority_mapping`: "deo" -> Deodorant, "sari" -> Sarees;
learned on the sample's catalog labels, which neither the teacher nor the model read, and
applied to held-out products). A product with a label that no vocabulary value names
counts as a miss, never as "not evaluated".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from .text_rules import PRODUCT_TYPE_KEY, normalize_key, normalize_value, values_match

MATCH_RULES = ("strict", "lenient", "mapped")
CATALOG_LABELS = "catalog labels"
SILVER_LABELS = "teacher labels (silver)"
MAPPING_SCHEMA = {"key": pl.String, "value": pl.String, "label": pl.String, "share": pl.Float64, "products": pl.Int64}
TRUTH_SCHEMA = {"product_id": pl.String, "key": pl.String, "value": pl.String}


def catalog_label_attributes(products: pl.DataFrame) -> pl.DataFrame:
    """(product_id, key, value) ground truth from the catalog's label_<key> columns (each
    distinct label normalized once: a catalog has 44k products but a few hundred labels)."""
    label_cols = [c for c in products.columns if c.startswith("label_")]
    if not label_cols or products.is_empty():
        return pl.DataFrame(schema=TRUTH_SCHEMA)
    long = (
        products.select("product_id", *label_cols)
        .unpivot(index="product_id", on=label_cols, variable_name="column", value_name="label")
        .filter(pl.col("label").is_not_null() & (pl.col("label") != ""))
    )
    names = long.select("column", "label").unique()
    names = names.with_columns(
        pl.col("column").map_elements(lambda c: normalize_key(c.removeprefix("label_")), return_dtype=pl.String).alias("key"),
    ).with_columns(pl.struct("key", "label").map_elements(lambda r: normalize_value(r["key"], r["label"]), return_dtype=pl.String).alias("value"))
    return long.join(names, on=["column", "label"]).select(list(TRUTH_SCHEMA)).cast(TRUTH_SCHEMA).unique()  # type: ignore[arg-type]


def catalog_label_domain(label_rows: pl.DataFrame) -> pl.DataFrame:
    """(key, value): every label value the catalog uses, from rows of its label_<key>
    columns (any rows: the whole catalog's, so that one shard whose labels say one thing
    is still judged against every value the labels can name)."""
    with_ids = label_rows.with_columns(pl.lit("").alias("product_id"))
    return catalog_label_attributes(with_ids).select("key", "value").unique()


def majority_mapping(predicted: pl.DataFrame, labels: pl.DataFrame, min_share: float = 0.5, min_products: int = 5, keys: tuple[str, ...] = (PRODUCT_TYPE_KEY,)) -> pl.DataFrame:
    """(key, value, label, share, products): for each predicted value of `keys` (the product
    type: the key whose values are discovered, not drawn from a lexicon), the catalog label
    that more than `min_share` (a majority) of the (at least `min_products`) products given
    that value carry. `predicted` and `labels`: (product_id, key, value) on the same products
    (the labeled sample: its teacher answers and its catalog labels)."""
    pairs = predicted.filter(pl.col("key").is_in(list(keys))).join(labels.rename({"value": "label"}), on=["product_id", "key"])
    if pairs.is_empty():
        return pl.DataFrame(schema=MAPPING_SCHEMA)
    counts = pairs.group_by("key", "value", "label").agg(pl.col("product_id").n_unique().alias("n"))
    totals = pairs.group_by("key", "value").agg(pl.col("product_id").n_unique().alias("products"))
    best = counts.sort(["n", "label"], descending=[True, False]).group_by("key", "value", maintain_order=True).first()
    return (
        best.join(totals, on=["key", "value"])
        .with_columns((pl.col("n") / pl.col("products")).alias("share"))
        .filter((pl.col("share") > min_share) & (pl.col("products") >= min_products))
        .select(list(MAPPING_SCHEMA))
        .cast(MAPPING_SCHEMA)  # type: ignore[arg-type]
        .sort("key", "value")
    )


def label_value_pairs(truth: pl.DataFrame, attributes: pl.DataFrame, rule: str = "strict", mapping: pl.DataFrame | None = None) -> pl.DataFrame:
    """(key, label, value): every label value of `truth` with every vocabulary value of
    `attributes` that names it under `rule` (see module doc; "mapped" needs `mapping` from
    `majority_mapping`)."""
    if rule not in MATCH_RULES:
        raise ValueError(f"rule must be one of {MATCH_RULES}, got {rule!r}")
    labels = truth.select("key", pl.col("value").alias("label")).unique()
    pairs = labels.join(attributes.select("key", "value").unique(), on="key")
    word_rule = "strict" if rule == "strict" else "lenient"
    mapped = set(mapping.select("key", "value", "label").iter_rows()) if rule == "mapped" and mapping is not None else set()
    matched = [
        (key, label, value) for key, label, value in pairs.select("key", "label", "value").iter_rows()
        if values_match(value, label, key, word_rule) or (key, value, label) in mapped
    ]
    return pl.DataFrame(matched, schema={"key": pl.String, "label": pl.String, "value": pl.String}, orient="row")


def expand_to_vocabulary(truth: pl.DataFrame, attributes: pl.DataFrame, rule: str = "strict", mapping: pl.DataFrame | None = None) -> pl.DataFrame:
    """Label rows (product_id, key, value) -> (product_id, key, value) rows naming every
    vocabulary value of the key that matches the label under `rule`."""
    table = label_value_pairs(truth, attributes, rule, mapping)
    return truth.rename({"value": "label"}).join(table, on=["key", "label"]).select("product_id", "key", "value").unique().cast(TRUTH_SCHEMA)  # type: ignore[arg-type]


def comparable_values(truth: pl.DataFrame, attributes: pl.DataFrame, rule: str = "lenient") -> pl.DataFrame:
    """(key, value) of the vocabulary values that name at least one of the catalog's label
    values under `rule`: the only values the labels can judge. A discovered "deo" names no
    articleType ("Deodorant" is another word): checking it against the labels would count a
    naming difference as an error, so checks leave it out and say how many they left."""
    return label_value_pairs(truth, attributes, rule).select("key", "value").unique()


@dataclass(frozen=True)
class GroundTruth:
    """What is right for a set of products, over a vocabulary in a fixed column order.

    `truth[i, a]`: vocabulary column a is right for product i; `labeled[key][i]`: product i
    has a label for the key (a labeled product whose label no column names is a miss).
    `source`: "catalog labels" or "teacher labels (silver)"; `rule`: how labels were mapped."""

    truth: np.ndarray  # bool [N, A]
    labeled: dict[str, np.ndarray]  # key -> bool [N]
    source: str
    rule: str

    @property
    def any_label(self) -> np.ndarray:
        masks = list(self.labeled.values())
        return np.logical_or.reduce(masks) if masks else np.zeros(self.truth.shape[0], dtype=bool)

    def subset(self, idx: np.ndarray) -> "GroundTruth":
        return GroundTruth(self.truth[idx], {k: m[idx] for k, m in self.labeled.items()}, self.source, self.rule)

    def counts(self) -> dict[str, int]:
        return {key: int(mask.sum()) for key, mask in self.labeled.items()}


def recall_at_k(scores: np.ndarray, truth: np.ndarray, ks: tuple[int, ...] = (1, 5, 10), rankable: np.ndarray | None = None, has_label: np.ndarray | None = None) -> dict[str, float]:
    """Paper protocol: rank the whole vocabulary per product (only `rankable` columns: the
    ABSENT pseudo-values are not attributes and take no rank). Over the products with a
    label (`has_label`, default: with a true column)."""
    has_truth = truth.any(axis=1) if has_label is None else has_label
    if rankable is not None:
        scores, truth = scores[:, rankable], truth[:, rankable]
    scores, truth = scores[has_truth], truth[has_truth]
    if len(scores) == 0:
        return {f"recall@{k}": float("nan") for k in ks}
    order = np.argsort(-scores, axis=1, kind="stable")
    hits_sorted = np.take_along_axis(truth, order, axis=1)
    return {f"recall@{k}": float(hits_sorted[:, :k].any(axis=1).mean()) for k in ks}


def mean_average_precision(scores: np.ndarray, truth: np.ndarray, key_slices: dict[str, slice], labeled: dict[str, np.ndarray], rankable: np.ndarray | None = None) -> float:
    """Mean over labeled products of the average precision of their vocabulary ranking, at
    key level: each labeled key is found at the rank of its best-ranked right value (never,
    if no value is right); AP = mean over the labeled keys of (keys found so far / rank)."""
    rankable = np.ones(scores.shape[1], dtype=bool) if rankable is None else rankable
    masked = np.where(rankable[None, :], scores, -np.inf)
    order = np.argsort(-masked, axis=1, kind="stable")
    rank_of = np.empty_like(order)
    rank_of[np.arange(len(order))[:, None], order] = np.arange(1, scores.shape[1] + 1)[None, :]
    keys = list(labeled)  # a labeled key the vocabulary lacks is never found
    if not keys:
        return float("nan")
    big = scores.shape[1] + 1
    ranks = np.full((scores.shape[0], len(keys)), np.inf)
    has = np.zeros((scores.shape[0], len(keys)), dtype=bool)
    for j, key in enumerate(keys):
        has[:, j] = labeled[key]
        if key not in key_slices:
            continue
        sl = key_slices[key]
        hit = truth[:, sl] & rankable[sl][None, :]
        found = np.where(hit, rank_of[:, sl], big).min(axis=1)
        ranks[:, j] = np.where(found < big, found, np.inf)
    aps = []
    for i in np.flatnonzero(has.any(axis=1)):
        found = np.sort(ranks[i, has[i]][np.isfinite(ranks[i, has[i]])])
        aps.append(float((np.arange(1, len(found) + 1) / found).sum() / has[i].sum()) if len(found) else 0.0)
    return float(np.mean(aps)) if aps else float("nan")


def top1_accuracy_per_key(scores: np.ndarray, truth: np.ndarray, key_slices: dict[str, slice], labeled: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """Per key, over the products with a label for it (`labeled`, default: with a true
    column), the share whose top value is right."""
    out = {}
    for key, sl in key_slices.items():
        has = labeled[key] if labeled is not None and key in labeled else truth[:, sl].any(axis=1)
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


def assignment_counts_per_key(assigned: np.ndarray, truth: np.ndarray, key_slices: dict[str, slice], labeled: dict[str, np.ndarray] | None = None) -> dict[str, tuple[int, int]]:
    """Per key: (right, checked) assigned flags over the products with a label for the key."""
    out = {}
    for key, sl in key_slices.items():
        has = labeled[key] if labeled is not None and key in labeled else truth[:, sl].any(axis=1)
        checked = int(assigned[has, sl].sum())
        if checked:
            out[key] = (int((assigned[has, sl] & truth[has, sl]).sum()), checked)
    return out


def assignment_precision_per_key(assigned: np.ndarray, truth: np.ndarray, key_slices: dict[str, slice], labeled: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """Precision of assigned flags per key, over products that have a label for the key."""
    return {key: right / checked for key, (right, checked) in assignment_counts_per_key(assigned, truth, key_slices, labeled).items()}


def per_page_precision_at_k(pages: pl.DataFrame, collection_attributes: pl.DataFrame, truth: pl.DataFrame, k: int = 10, labeled_keys: set[str] | None = None, comparable: pl.DataFrame | None = None) -> pl.DataFrame:
    """slug -> p_at_k: for each page, the share of its top-k products whose labels carry
    every page attribute of a labeled key (pages with none are not in the frame).

    pages: slug, product_id, rank; collection_attributes: slug, key, value;
    truth: product_id, key, value in the pages' vocabulary (`expand_to_vocabulary` maps
    catalog labels onto it). `labeled_keys`: the keys the catalog has labels for (default:
    the keys in `truth`); `comparable`: when given, only page attributes among these (key,
    value) pairs are checked (`comparable_values`)."""
    return _top_k_precision(pages, collection_attributes, truth, k, labeled_keys, comparable, judged_by="slug")


def concept_precision_at_k(pages: pl.DataFrame, combination_attributes: pl.DataFrame, truth: pl.DataFrame, k: int = 10, labeled_keys: set[str] | None = None, comparable: pl.DataFrame | None = None) -> pl.DataFrame:
    """slug -> p_at_k for concept pages (`style_concepts.concept_pages`: each product carries
    the `combination_slug` it matched): the share of a page's top-k products whose labels carry
    every checkable attribute of *their* combination. A product whose combination has no
    checkable attribute is not counted; a page with none such is not in the frame.
    combination_attributes: slug (= combination_slug), key, value."""
    return _top_k_precision(pages, combination_attributes, truth, k, labeled_keys, comparable, judged_by="combination_slug")


def _top_k_precision(pages: pl.DataFrame, attributes: pl.DataFrame, truth: pl.DataFrame, k: int, labeled_keys: set[str] | None, comparable: pl.DataFrame | None, judged_by: str) -> pl.DataFrame:
    """slug -> p_at_k, each top-k product judged on the attribute set its `judged_by` column
    names (`attributes.slug`): its page's own (`slug`) or its concept combination's."""
    labeled_keys = labeled_keys if labeled_keys is not None else set(truth.get_column("key").unique().to_list())
    attrs = attributes.filter(pl.col("key").is_in(labeled_keys)).select(pl.col("slug").alias(judged_by), "key", "value")
    if comparable is not None:
        attrs = attrs.join(comparable.select("key", "value"), on=["key", "value"], how="semi")
    checkable = attrs.group_by(judged_by).agg(pl.len().alias("n_attrs"))
    top = pages.filter(pl.col("rank") <= k).join(checkable, on=judged_by)
    matched = (
        top.join(attrs, on=judged_by)
        .join(truth.select("product_id", "key", "value").unique().with_columns(pl.lit(True).alias("hit")), on=["product_id", "key", "value"], how="left")
        .group_by("slug", "product_id", "n_attrs")
        .agg(pl.col("hit").fill_null(False).sum().alias("hits"))
    )
    return matched.group_by("slug").agg((pl.col("hits") == pl.col("n_attrs")).mean().alias("p_at_k")).sort("slug")


def concept_precision_against_catalog_labels(pages: pl.DataFrame, combination_attributes: pl.DataFrame, products: pl.DataFrame, k: int = 10) -> float:
    """Mean `concept_precision_at_k` of concept pages against the catalog's labels, judged as
    `precision_against_catalog_labels` judges collections (lenient, nameable values only)."""
    labels = catalog_label_attributes(products)
    values = combination_attributes.select("key", "value").unique()
    truth = expand_to_vocabulary(labels, values, "lenient")
    labeled_keys = set(labels.get_column("key").unique().to_list())
    per_page = concept_precision_at_k(pages, combination_attributes, truth, k, labeled_keys, comparable_values(labels, values))
    return float(per_page.get_column("p_at_k").mean()) if per_page.height else float("nan")


def collection_precision_at_k(pages: pl.DataFrame, collection_attributes: pl.DataFrame, truth: pl.DataFrame, k: int = 10, labeled_keys: set[str] | None = None, comparable: pl.DataFrame | None = None) -> float:
    """Mean over pages of `per_page_precision_at_k` (NaN when no page can be checked)."""
    per_page = per_page_precision_at_k(pages, collection_attributes, truth, k, labeled_keys, comparable)
    return float(per_page.get_column("p_at_k").mean()) if per_page.height else float("nan")


def precision_against_catalog_labels(pages: pl.DataFrame, collection_attributes: pl.DataFrame, products: pl.DataFrame, k: int = 10) -> float:
    """`collection_precision_at_k` of published pages against the catalog's labels of
    `products` (lenient mapping onto the pages' values). Only page attributes the labels can
    name are checked (a "Deo" page is not wrong for the catalog calling them "Deodorant");
    NaN when no page has a product with labels for its attributes (a label-free catalog)."""
    labels = catalog_label_attributes(products)
    page_values = collection_attributes.select("key", "value").unique()
    truth = expand_to_vocabulary(labels, page_values, "lenient")
    labeled_keys = set(labels.get_column("key").unique().to_list())
    return collection_precision_at_k(pages, collection_attributes, truth, k, labeled_keys, comparable_values(labels, page_values))


def teacher_agreement(attributes: pl.DataFrame, products: pl.DataFrame) -> dict[str, dict[str, float | int]]:
    """Per key of the teacher's answers on `products` (the labeled sample): coverage (share
    of products it gave a value) and, where the catalog has labels for the key, agreement
    (share of products with both whose value names the label: lenient rule, which is strict
    for every key but the product type). Labels are read here, for the figure only."""
    n = products.height
    labels = catalog_label_attributes(products)
    answers = attributes.select("product_id", "key", "value").unique()
    out: dict[str, dict[str, float | int]] = {}
    for key in sorted(answers.get_column("key").unique().to_list()):
        given = answers.filter(pl.col("key") == key)
        row: dict[str, float | int] = {"coverage": round(given.get_column("product_id").n_unique() / n, 4) if n else 0.0}
        both = given.join(labels.filter(pl.col("key") == key).rename({"value": "label"}), on=["product_id", "key"])
        if both.height:
            right: dict[str, bool] = {}
            for pid, value, label in both.select("product_id", "value", "label").iter_rows():
                right[pid] = right.get(pid, False) or values_match(value, label, key, "lenient")
            row |= {"agreement": round(sum(right.values()) / len(right), 4), "checked": len(right)}
        out[key] = row
    return out
