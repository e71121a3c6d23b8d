"""One helper turns every check outcome of the core into a Dagster check result."""

from dagster import AssetCheckSeverity, MetadataValue

from pinlanding_assets.core.checks import ERROR, WARN, CheckOutcome
from pinlanding_assets.defs.checks import check_result


def test_a_check_outcome_keeps_its_name_severity_description_and_metadata() -> None:
    result = check_result(CheckOutcome("page_count", False, ERROR, {"value": 0, "threshold": 1}, "no pages"))
    assert (result.check_name, result.passed, result.severity, result.description) == ("page_count", False, AssetCheckSeverity.ERROR, "no pages")
    assert {k: v.value for k, v in result.metadata.items()} == {"value": 0, "threshold": 1}

    warned = check_result(CheckOutcome("sample_accounted_for", True, WARN, {"examples": ["a"], "per_key": {"color": 1}, "missing": None}))
    assert warned.severity == AssetCheckSeverity.WARN and warned.description is None
    assert warned.metadata["examples"] == MetadataValue.json(["a"]) and warned.metadata["per_key"] == MetadataValue.json({"color": 1})
    assert warned.metadata["missing"].value is None
