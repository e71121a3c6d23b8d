"""When a model may make pages, and when a shard's scores may reach them.

Every gate judges a proportion (a top-1 accuracy, an assignment precision, a Recall@1) on
held-out products, and judges it only on enough evidence (`proportion_gate`):

* fewer than `min_checked` items: not judged; the gate warns and says so (it never blocks a
  catalog merely for being small or lacking labels);
* the Wilson upper bound below the threshold (the rate is below it, with 95% confidence):
  the gate fails and blocks;
* the point value below the threshold but the bound above it (2 checked assignments at
  0.5 could well be 0.9): the gate warns and says why;
* otherwise it passes.

A value that cannot be measured never passes or blocks silently: its gate warns with the
reason. A `GateResult` is reported as a check (`as_check`: ERROR when it can block, WARN
otherwise); a model is promoted (`model_release.py`), or a shard's scores published
(`shard_scoring.py`), only when no gate blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import polars as pl

from .checks import ERROR, WARN, CheckOutcome
from .evaluation import CATALOG_LABELS, SILVER_LABELS, catalog_label_attributes, catalog_label_domain, comparable_values, expand_to_vocabulary
from .model_fitting import ENCODER_ONLY, PUBLISHED, FittedModel
from .training import sample_role
from .vocabulary import canonical_labels, kept_attributes
from .warehouse import Warehouse


@dataclass(frozen=True)
class GateConfig:
    """When a model may make pages."""

    min_recall_at_1: float = 0.5  # the encoder alone (no calibration, no text evidence), held-out R@1 over the vocabulary
    min_lift_over_prior: float = 0.05  # ... and that much above the frequency prior's R@1
    min_key_top1: float = 0.6  # published top-1 of each gated key
    min_key_precision: float = 0.8  # published assignment precision of each gated key
    gated_keys: tuple[str, ...] = ("product_type", "color")
    min_checked: int = 20  # fewer held-out products or assignments: warn, do not judge


@dataclass(frozen=True)
class GateResult:
    name: str
    passed: bool
    blocking: bool  # a failed blocking gate stops pages; a failed non-blocking one warns
    value: float | None
    threshold: float | None
    description: str
    metadata: dict = field(default_factory=dict)

    @property
    def blocks(self) -> bool:
        return not self.passed and self.blocking

    def as_check(self) -> CheckOutcome:
        """The gate as a check: a failed blocking gate is an ERROR (it stops the steps
        after it), a failed non-blocking one (not enough evidence) a WARN."""
        return CheckOutcome(self.name, self.passed, ERROR if self.blocking else WARN, {"value": self.value, "threshold": self.threshold, **self.metadata}, self.description)


def wilson_bounds(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default)."""
    if n <= 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - margin) / (1 + z * z / n), (centre + margin) / (1 + z * z / n)


def proportion_gate(name: str, successes: float, n: int, threshold: float, min_checked: int, what: str, metadata: dict | None = None) -> GateResult:
    """Judge a rate `successes / n` against `threshold` on enough evidence (module docstring)."""
    metadata = dict(metadata or {}) | {"checked": n}
    if n < min_checked:
        return GateResult(name, False, False, successes / n if n else None, threshold, f"not enough evidence: {what} measured on {n} < min_checked {min_checked}", metadata)
    value = successes / n
    low, high = wilson_bounds(successes, n)
    metadata |= {"wilson_low": round(low, 4), "wilson_high": round(high, 4)}
    if high < threshold:
        return GateResult(name, False, True, value, threshold, f"{what} {value:.3f} on {n} (95% interval {low:.3f}-{high:.3f}) is below {threshold}", metadata)
    if value < threshold:
        return GateResult(name, False, False, value, threshold, f"{what} {value:.3f} on {n} is below {threshold}, but within its 95% interval ({low:.3f}-{high:.3f}): too little evidence to block", metadata)
    return GateResult(name, True, True, value, threshold, f"{what} {value:.3f} on {n} (threshold {threshold})", metadata)


def _truth_set_for(fitted: FittedModel, key: str, min_checked: int) -> str | None:
    """The first truth set (lenient catalog labels before silver) with enough labeled
    products for the key; gates read no label-fitted mapping."""
    for name, methods in fitted.evaluations.items():
        if name.endswith(("(strict)", "(mapped)")):
            continue
        if methods[PUBLISHED].labeled_per_key.get(key, 0) >= min_checked:
            return name
    return None


def model_gates(fitted: FittedModel, config: GateConfig) -> list[GateResult]:
    """The model's checks: it beats the frequency prior, and the published scores of the
    gated keys are right often enough (top-1) and precise enough (assignments)."""
    return [_beats_prior(fitted, config), _key_gate(fitted, config, "heldout_key_accuracy"), _key_gate(fitted, config, "heldout_key_precision")]


def _beats_prior(fitted: FittedModel, config: GateConfig) -> GateResult:
    name = "model_beats_prior"
    if not fitted.evaluations:
        return GateResult(name, False, False, None, config.min_recall_at_1, "not enough evidence: no held-out products to judge the model on (neither catalog labels nor a silver test split)")
    truth_set = fitted.primary
    encoder, prior = fitted.evaluations[truth_set][ENCODER_ONLY], fitted.evaluations[truth_set]["frequency_prior"]
    value, baseline = encoder.recall["recall@1"], prior.recall["recall@1"]
    threshold = max(config.min_recall_at_1, baseline + config.min_lift_over_prior)
    metadata = {"truth": truth_set, "prior_recall@1": baseline, "lift": value - baseline, "encoder_map": encoder.mean_average_precision, "prior_map": prior.mean_average_precision}
    gate = proportion_gate(name, value * encoder.n_products, encoder.n_products, threshold, config.min_checked, f"R@1 of the encoder alone (prior {baseline:.3f}, {truth_set})", metadata)
    return gate


def _key_gate(fitted: FittedModel, config: GateConfig, name: str) -> GateResult:
    """Per gated key, a `proportion_gate`; the gate blocks if one key blocks, warns if one
    key warns (or cannot be judged), passes when every key passes."""
    threshold = config.min_key_top1 if name == "heldout_key_accuracy" else config.min_key_precision
    what = "top-1" if name == "heldout_key_accuracy" else "assignment precision"
    per_key: dict[str, GateResult] = {}
    for key in config.gated_keys:
        truth_set = _truth_set_for(fitted, key, config.min_checked)
        if truth_set is None:
            per_key[key] = GateResult(name, False, False, None, threshold, f"{key}: not enough evidence: too few held-out products with a label for it")
            continue
        evaluation = fitted.evaluations[truth_set][PUBLISHED]
        if name == "heldout_key_accuracy":
            value, n = evaluation.top1.get(key), evaluation.labeled_per_key.get(key, 0)
        else:
            value, n = evaluation.assignment_precision.get(key), evaluation.assignment_checked.get(key, 0)
        per_key[key] = proportion_gate(name, (value or 0.0) * n, n if value is not None else 0, threshold, config.min_checked, f"{key} {what} ({truth_set})", {"truth": truth_set})
    worst = next((r for r in per_key.values() if r.blocks), None) or next((r for r in per_key.values() if not r.passed), None)
    metadata = {"per_key": {k: {"value": r.value, "passed": r.passed, "description": r.description} for k, r in per_key.items()}}
    if worst is None:
        lowest = min(per_key.values(), key=lambda r: r.value if r.value is not None else 1.0)
        return GateResult(name, True, True, lowest.value, threshold, "; ".join(r.description for r in per_key.values()), metadata)
    return GateResult(name, False, worst.blocking, worst.value, threshold, "; ".join(r.description for r in per_key.values()), metadata)


# -- a shard's scores ------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardGateConfig:
    """When a shard's scores may reach the pages."""

    min_assignment_precision: float = 0.8  # check: on the shard's catalog labels, else its silver test products
    min_checked: int = 20  # fewer checked assignments: the check warns instead of judging


@dataclass(frozen=True)
class AssignmentCheck:
    """How many of a shard's assigned attributes could be checked, and how many were right."""

    right: int
    checked: int
    source: str  # CATALOG_LABELS, SILVER_LABELS, or "none"
    not_comparable: int = 0  # assignments of values no label names, or of products whose label no value names

    @property
    def precision(self) -> float | None:
        """Right among checked; None when nothing could be checked."""
        return self.right / self.checked if self.checked else None

    def gate(self, threshold: float, min_checked: int) -> GateResult:
        what = f"precision of assigned attributes against {self.source}"
        if self.not_comparable:
            what += f" ({self.not_comparable} assignments the labels cannot judge left unchecked: values no label names, or labels no value names)"
        return proportion_gate("assignment_precision", self.right, self.checked, threshold, min_checked, what, {"truth": self.source, "not_comparable": self.not_comparable})


def catalog_label_domain_of(warehouse: Warehouse) -> pl.DataFrame:
    """Every label value of the whole catalog (all shards), for the precision gate."""
    label_columns = [c for c in warehouse.columns("catalog_products") if c.startswith("label_")]
    if not label_columns:
        return pl.DataFrame(schema={"key": pl.String, "value": pl.String})
    quoted = ", ".join(f'"{c}"' for c in label_columns)
    return catalog_label_domain(warehouse.read(f"SELECT DISTINCT {quoted} FROM catalog_products"))


def check_assignments(assigned: pl.DataFrame, products: pl.DataFrame, raw_attributes: pl.DataFrame, vocabulary: pl.DataFrame, split: dict, label_domain: pl.DataFrame | None = None) -> AssignmentCheck:
    """Check assigned (product_id, key, value) rows against the catalog's labels (lenient
    mapping) where the shard has some, else against the teacher's answers on the shard's
    silver test products (`split`: the model's sample split, from its checkpoint). Only
    values the labels can name are checked (`evaluation.comparable_values`), over
    `label_domain` ((key, value): every label value of the whole catalog, from
    `evaluation.catalog_label_domain`; default: the shard's own labels). The whole
    catalog's domain matters: a shard whose labels all say "yellow" must still be judged on
    the "black" it was assigned."""
    labels = catalog_label_attributes(products)
    source = CATALOG_LABELS
    if labels.is_empty():
        source = SILVER_LABELS
        test_ids = [
            pid for pid in raw_attributes.get_column("product_id").unique().to_list()
            if sample_role(pid, split.get("validation_share", 0.0), split.get("test_share", 0.0), split.get("seed", 0)) == "test"
        ]
        labels = canonical_labels(raw_attributes.filter(pl.col("product_id").is_in(test_ids)), vocabulary)
    if labels.is_empty():
        return AssignmentCheck(0, 0, "none")
    vocabulary_values = kept_attributes(vocabulary)
    truth = expand_to_vocabulary(labels, vocabulary_values, "lenient")
    labeled = assigned.join(labels.select("product_id", "key").unique(), on=["product_id", "key"], how="semi")
    # A label no vocabulary value names ("Free Gifts" for a watch given away) cannot judge
    # what the product is: its assignments are left unchecked, like values no label names.
    judged = labeled.join(truth.select("product_id", "key").unique(), on=["product_id", "key"], how="semi")
    domain = label_domain if source == CATALOG_LABELS and label_domain is not None and not label_domain.is_empty() else labels
    checkable = judged.join(comparable_values(pl.concat([domain.select("key", "value"), labels.select("key", "value")]), vocabulary_values), on=["key", "value"], how="semi")
    right = checkable.join(truth, on=["product_id", "key", "value"], how="semi").height
    return AssignmentCheck(right, checkable.height, source, labeled.height - checkable.height)
