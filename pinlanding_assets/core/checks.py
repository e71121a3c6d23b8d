"""What the stages' checks found, without Dagster: one `CheckOutcome` per check.

Each stage's step turns its outcomes into asset checks (`defs/checks.py`) with the
severity given here: ERROR for a failure that must be looked at (and stops what follows
when the check is blocking), WARN for one that warns. The proportions judged on enough
evidence (the model's and a shard's scores) are gates (`gates.py`), which give their
outcome through `GateResult.as_check`; the plainer rules of the other stages are here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from .vocabulary import kept_attributes

ERROR = "ERROR"
WARN = "WARN"


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    severity: str  # ERROR | WARN: how a failure is reported
    metadata: dict = field(default_factory=dict)  # what the check measured, by name
    description: str | None = None


def at_least(name: str, value: float, threshold: float, severity: str) -> CheckOutcome:
    return CheckOutcome(name, value >= threshold, severity, {"value": value, "threshold": threshold})


def at_most(name: str, value: float, threshold: float, severity: str) -> CheckOutcome:
    return CheckOutcome(name, value <= threshold, severity, {"value": value, "threshold": threshold})


# -- a shard's ingest ------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestCheckConfig:
    """When a shard's ingest is sound."""

    min_coverage: float = 0.9  # check: share of sampled products that got attributes
    max_quarantine_share: float = 0.05  # check: share of the shard's rows quarantined


def ingest_checks(coverage: float, lost_products: list[str], quarantine_share: float, config: IngestCheckConfig) -> list[CheckOutcome]:
    """The sample is labeled (`coverage`: share of sampled products with attributes), none
    of it is lost (every sampled product has attributes or a quarantine reason), and few of
    the shard's rows were refused."""
    return [
        at_least("attribute_coverage", coverage, config.min_coverage, WARN),
        CheckOutcome("sample_accounted_for", not lost_products, ERROR, {"lost_products": len(lost_products), "examples": lost_products[:20]}),
        at_most("quarantine_share", quarantine_share, config.max_quarantine_share, WARN),
    ]


# -- the curated vocabulary ------------------------------------------------------------------


@dataclass(frozen=True)
class VocabularyCheckConfig:
    """When a curated vocabulary is usable."""

    min_values_per_key: int = 2  # check: a key with fewer kept values cannot tell products apart
    max_values_per_key: int = 500  # check: more means normalization or the extractor went wrong


def unexplained_decisions(vocabulary: pl.DataFrame) -> pl.DataFrame:
    """Rows dropped or merged without a reason of their own."""
    return vocabulary.filter(
        ((pl.col("status") == "dropped") | (pl.col("value") != pl.col("canonical"))) & (pl.col("reason").is_null() | (pl.col("reason") == "kept"))
    )


def kept_values_per_key(vocabulary: pl.DataFrame) -> dict[str, int]:
    """{key: its kept (canonical) values}, in key order."""
    return dict(kept_attributes(vocabulary).group_by("key").len().sort("key").iter_rows())


def vocabulary_checks(vocabulary: pl.DataFrame, config: VocabularyCheckConfig) -> list[CheckOutcome]:
    """Every decision is explained and something is kept; every key keeps a number of
    values that can tell products apart."""
    unexplained = unexplained_decisions(vocabulary)
    values_per_key = kept_values_per_key(vocabulary)
    kept = sum(values_per_key.values())
    out_of_bounds = {k: n for k, n in values_per_key.items() if not config.min_values_per_key <= n <= config.max_values_per_key}
    return [
        CheckOutcome("every_decision_explained", unexplained.is_empty() and kept > 0, ERROR, {"unexplained": unexplained.height, "kept": kept}),
        CheckOutcome(
            "values_per_key_within_bounds", not out_of_bounds, WARN,
            {"out_of_bounds": out_of_bounds, "min": config.min_values_per_key, "max": config.max_values_per_key},
        ),
    ]


# -- the published pages ---------------------------------------------------------------------


@dataclass(frozen=True)
class PageCheckConfig:
    """When the published pages are sound (page sizes: `MatchingConfig`'s bounds)."""

    min_pages: int = 1  # check
    min_precision_at_10: float = 0.8  # check, against catalog labels where there are some


def page_checks(n_pages: int, smallest: int, largest: int, precision_at_10: float, min_page_size: int, max_page_size: int, config: PageCheckConfig) -> list[CheckOutcome]:
    """Every page within the size bounds, enough pages, and P@10 against the catalog's
    labels where it can be measured (NaN: no page has a product with labels for its
    attributes)."""
    measured = precision_at_10 == precision_at_10
    return [
        CheckOutcome(
            "page_size_bounds", n_pages == 0 or (smallest >= min_page_size and largest <= max_page_size), ERROR,
            {"smallest": smallest, "largest": largest, "min": min_page_size, "max": max_page_size},
        ),
        at_least("page_count", n_pages, config.min_pages, ERROR),
        CheckOutcome(
            "page_precision_at_10",
            # Without catalog labels there is nothing to measure: a label-free catalog does not
            # fail for lacking labels, and the description says the figure was not measured.
            bool(not measured or precision_at_10 >= config.min_precision_at_10),
            WARN,
            {"value": precision_at_10 if measured else None, "threshold": config.min_precision_at_10, "truth": "catalog labels (lenient)" if measured else "none"},
            f"P@10 {precision_at_10:.3f} against catalog labels (lenient mapping; attributes the labels can name)" if measured
            else "not measured: no page has a product with catalog labels for its attributes (a label-free catalog)",
        ),
    ]
