"""Check outcomes of the core (`core/checks.py`, gates' `as_check`) as Dagster check results."""

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue

from ..core.checks import CheckOutcome


def check_result(outcome: CheckOutcome) -> AssetCheckResult:
    """The outcome with its severity; dicts and lists in its metadata shown as JSON."""
    return AssetCheckResult(
        check_name=outcome.name,
        passed=outcome.passed,
        severity=AssetCheckSeverity(outcome.severity),
        description=outcome.description,
        metadata={k: MetadataValue.json(v) if isinstance(v, dict | list) else v for k, v in outcome.metadata.items()},
    )


def check_results(outcomes: list[CheckOutcome]) -> list[AssetCheckResult]:
    return [check_result(outcome) for outcome in outcomes]
