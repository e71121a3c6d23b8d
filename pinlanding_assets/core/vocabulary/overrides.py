"""Step 6 (and the renames of step 1): the human overrides file, which always wins."""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl

from ..text_rules import normalize_key, normalize_value, singular_value

OVERRIDE_ACTIONS = ("allow", "deny", "rename")
OVERRIDES_SCHEMA = {"key": pl.String, "value": pl.String, "action": pl.String, "canonical": pl.String, "note": pl.String}


class OverridesError(ValueError):
    pass


def load_overrides(path: Path | str | None) -> pl.DataFrame:
    """The overrides file: `key,value,action,canonical,note` (action allow|deny|rename;
    canonical only for rename). Lines starting with # are comments. A missing file means
    no overrides; a malformed line is a clear error (a human's decision must not be
    silently ignored)."""
    if path is None or not Path(path).is_file():
        return pl.DataFrame(schema=OVERRIDES_SCHEMA)
    rows = []
    with open(path, newline="") as handle:
        lines = [line for line in handle if line.strip() and not line.lstrip().startswith("#")]
    for number, row in enumerate(csv.DictReader(lines), start=2):
        key, value, action = ((row.get(c) or "").strip() for c in ("key", "value", "action"))
        canonical = (row.get("canonical") or "").strip()
        if not key or not value or action not in OVERRIDE_ACTIONS:
            raise OverridesError(f"{path}: row {number}: need key, value and action in {OVERRIDE_ACTIONS}, got {row}")
        if action == "rename" and not canonical:
            raise OverridesError(f"{path}: row {number}: rename needs a canonical value")
        key = normalize_key(key)
        rows.append(
            {
                "key": key,
                "value": normalize_value(key, value),
                "action": action,
                "canonical": normalize_value(key, canonical) if canonical else None,
                "note": (row.get("note") or "").strip(),
            }
        )
    return pl.DataFrame(rows, schema=OVERRIDES_SCHEMA)


def renames(overrides: pl.DataFrame) -> dict[tuple[str, str], str]:
    """(key, value) -> canonical for every rename line (a later line wins)."""
    return {(r["key"], r["value"]): r["canonical"] for r in overrides.filter(pl.col("action") == "rename").iter_rows(named=True)}


def allow_or_deny(overrides: pl.DataFrame, key: str, *forms: str) -> dict | None:
    """The allow or deny line for a value of `key` known by `forms` (its normalized and
    canonical form), the last one when several match. A human writes "best sellers" or
    "best seller": a line matches either number."""
    wanted = {singular_value(form) for form in forms}
    match = None
    for override in overrides.filter((pl.col("key") == key) & pl.col("action").is_in(["allow", "deny"])).iter_rows(named=True):
        if singular_value(override["value"]) in wanted:
            match = override
    return match
