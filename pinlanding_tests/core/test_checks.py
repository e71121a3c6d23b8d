"""The stages' check rules, without Dagster: what passes, how a failure is reported, and
the metadata each check records (names the UI and the alerts read)."""

from __future__ import annotations

import math

import polars as pl

from pinlanding_assets.core.checks import (
    ERROR,
    WARN,
    IngestCheckConfig,
    PageCheckConfig,
    VocabularyCheckConfig,
    ingest_checks,
    kept_values_per_key,
    page_checks,
    unexplained_decisions,
    vocabulary_checks,
)
from pinlanding_assets.core.gates import GateResult, proportion_gate


def by_name(outcomes):
    return {o.name: o for o in outcomes}


def test_ingest_checks_judge_coverage_losses_and_quarantine() -> None:
    good = by_name(ingest_checks(0.95, [], 0.01, IngestCheckConfig()))
    assert [o.passed for o in good.values()] == [True, True, True]
    assert list(good) == ["attribute_coverage", "sample_accounted_for", "quarantine_share"]
    assert good["attribute_coverage"].metadata == {"value": 0.95, "threshold": 0.9} and good["attribute_coverage"].severity == WARN

    lost = [f"p{i:03d}" for i in range(25)]
    bad = by_name(ingest_checks(0.5, lost, 0.2, IngestCheckConfig()))
    assert not any(o.passed for o in bad.values())
    assert bad["sample_accounted_for"].severity == ERROR
    assert bad["sample_accounted_for"].metadata == {"lost_products": 25, "examples": lost[:20]}
    assert bad["quarantine_share"].metadata == {"value": 0.2, "threshold": 0.05} and bad["quarantine_share"].severity == WARN


def vocabulary(rows: list[tuple[str, str, str, str, str | None]]) -> pl.DataFrame:
    """(key, value, canonical, status, reason) rows of a curated vocabulary."""
    return pl.DataFrame(rows, schema={"key": pl.String, "value": pl.String, "canonical": pl.String, "status": pl.String, "reason": pl.String}, orient="row").with_columns(
        pl.lit(1).alias("frequency")
    )


def test_vocabulary_checks_find_unexplained_decisions_and_keys_out_of_bounds() -> None:
    explained = vocabulary([
        ("color", "black", "black", "kept", "kept"),
        ("color", "blk", "black", "kept", "merged into black"),
        ("color", "white", "white", "kept", "kept"),
        ("pattern", "striped", "striped", "kept", "kept"),
        ("pattern", "xx", "xx", "dropped", "too rare"),
    ])
    assert kept_values_per_key(explained) == {"color": 2, "pattern": 1}
    outcomes = by_name(vocabulary_checks(explained, VocabularyCheckConfig()))
    assert outcomes["every_decision_explained"].passed and outcomes["every_decision_explained"].metadata == {"unexplained": 0, "kept": 3}
    bounds = outcomes["values_per_key_within_bounds"]
    assert not bounds.passed and bounds.severity == WARN
    assert bounds.metadata == {"out_of_bounds": {"pattern": 1}, "min": 2, "max": 500}

    # A merge and a drop without a reason of their own are unexplained.
    silent = vocabulary([("color", "blk", "black", "kept", "kept"), ("color", "black", "black", "kept", "kept"), ("color", "zz", "zz", "dropped", None)])
    assert unexplained_decisions(silent).get_column("value").to_list() == ["blk", "zz"]
    failed = by_name(vocabulary_checks(silent, VocabularyCheckConfig(min_values_per_key=1)))["every_decision_explained"]
    assert not failed.passed and failed.severity == ERROR and failed.metadata["unexplained"] == 2


def test_page_checks_bound_sizes_count_pages_and_measure_precision_only_where_labels_judge() -> None:
    outcomes = by_name(page_checks(12, 10, 60, 0.9, 10, 60, PageCheckConfig()))
    assert all(o.passed for o in outcomes.values())
    assert outcomes["page_size_bounds"].metadata == {"smallest": 10, "largest": 60, "min": 10, "max": 60}
    assert outcomes["page_count"].metadata == {"value": 12, "threshold": 1} and outcomes["page_count"].severity == ERROR
    precision = outcomes["page_precision_at_10"]
    assert precision.severity == WARN and precision.metadata == {"value": 0.9, "threshold": 0.8, "truth": "catalog labels (lenient)"}
    assert precision.description.startswith("P@10 0.900")

    too_big = by_name(page_checks(3, 5, 70, 0.5, 10, 60, PageCheckConfig()))
    assert not too_big["page_size_bounds"].passed and not too_big["page_precision_at_10"].passed

    # No pages: sizes cannot be out of bounds, but there are too few pages. No labels: P@10
    # is not measured, and a label-free catalog does not fail for it.
    empty = by_name(page_checks(0, 0, 0, math.nan, 10, 60, PageCheckConfig()))
    assert empty["page_size_bounds"].passed and not empty["page_count"].passed
    unmeasured = empty["page_precision_at_10"]
    assert unmeasured.passed and unmeasured.metadata == {"value": None, "threshold": 0.8, "truth": "none"}
    assert unmeasured.description.startswith("not measured")


def test_a_gate_reports_as_a_check_with_its_value_threshold_and_figures() -> None:
    blocking = proportion_gate("assignment_precision", 300, 500, 0.8, 20, "precision", {"truth": "catalog labels"})
    check = blocking.as_check()
    assert (check.name, check.passed, check.severity) == ("assignment_precision", False, ERROR)
    assert check.metadata["value"] == 0.6 and check.metadata["threshold"] == 0.8 and check.metadata["truth"] == "catalog labels"
    assert check.description == blocking.description
    warning = GateResult("x", False, False, None, 0.5, "not enough evidence", {"per_key": {"color": {"value": None}}}).as_check()
    assert warning.severity == WARN and warning.metadata == {"value": None, "threshold": 0.5, "per_key": {"color": {"value": None}}}
