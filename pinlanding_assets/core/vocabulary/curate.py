"""The curation run (`curate_vocabulary`: the steps in the package docstring, in order) and
what later stages read from its table: the kept attributes, the funnel, canonical labels."""

from __future__ import annotations

import polars as pl

from ..text_rules import normalize_key, normalize_value
from .config import CurationConfig
from .judge import DEFAULT_DENYLIST, Judge, RuleJudge, denylisted
from .merge import TextEncoder, merge_near_duplicates
from .overrides import OVERRIDES_SCHEMA, allow_or_deny, renames

VOCABULARY_SCHEMA = {
    "key": pl.String,
    "value": pl.String,
    "canonical": pl.String,
    "frequency": pl.Int64,  # products carrying the canonical attribute
    "merged_from": pl.List(pl.String),  # raw values mapped to the canonical attribute
    "status": pl.String,  # kept | dropped
    "reason": pl.String,
    "normalized": pl.String,
    "value_frequency": pl.Int64,  # products carrying this raw value
    "step": pl.String,  # the step that decided: normalization/merge/frequency/judge/safety/override
    "similarity": pl.Float64,  # cosine to the canonical value when merged
    "judged_by": pl.String,  # llm | rules | None (not judged: dropped earlier)
}
STEPS = ("raw", "normalization", "merge", "frequency", "judge", "safety", "override")


def curate_vocabulary(
    raw_attributes: pl.DataFrame,
    config: CurationConfig = CurationConfig(),
    encoder: TextEncoder | None = None,
    judge: Judge | None = None,
    overrides: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per raw (key, value): canonical form, frequency, status, step and reason.

    `encoder=None` merges on spelling alone; `judge=None` uses the offline `RuleJudge`."""
    if raw_attributes.is_empty():
        return pl.DataFrame(schema=VOCABULARY_SCHEMA)
    overrides = overrides if overrides is not None else pl.DataFrame(schema=OVERRIDES_SCHEMA)
    denylist = DEFAULT_DENYLIST + tuple(config.extra_denylist)
    judge = judge or RuleJudge(config.max_value_words, config.max_value_chars, denylist)

    # 1. normalization (+ human renames)
    raw = raw_attributes.select("product_id", "key", "value").with_columns(pl.col("key").map_elements(normalize_key, return_dtype=pl.String))
    raw = raw.with_columns(
        pl.struct("key", "value").map_elements(lambda r: normalize_value(r["key"], r["value"]), return_dtype=pl.String).alias("normalized")
    )
    renamed = renames(overrides)
    raw = raw.with_columns(
        pl.struct("key", "normalized").map_elements(lambda r: renamed.get((r["key"], r["normalized"]), r["normalized"]), return_dtype=pl.String).alias("renamed")
    )
    empty = raw.filter(pl.col("renamed") == "")
    raw = raw.filter(pl.col("renamed") != "")

    # 2. semantic merging
    per_value = raw.group_by("key", "renamed").agg(pl.col("product_id").n_unique().alias("value_frequency")).rename({"renamed": "normalized"})
    fixed = {(k, canonical) for (k, _), canonical in renamed.items()}
    merges = merge_near_duplicates(per_value, encoder, config, fixed) if config.merge else {}
    merge_frame = pl.DataFrame(
        [{"key": k, "renamed": v, "canonical": m.canonical, "similarity": m.similarity, "spelling": m.spelling} for (k, v), m in merges.items()],
        schema={"key": pl.String, "renamed": pl.String, "canonical": pl.String, "similarity": pl.Float64, "spelling": pl.Float64},
    )
    raw = raw.join(merge_frame, on=["key", "renamed"], how="left").with_columns(pl.col("canonical").fill_null(pl.col("renamed")))

    # 3. frequency filter on the canonical groups
    key_products = raw.group_by("key").agg(pl.col("product_id").n_unique().alias("key_products"))
    groups = (
        raw.group_by("key", "canonical")
        .agg(pl.col("product_id").n_unique().alias("frequency"), pl.col("value").unique().sort().alias("merged_from"))
        .join(key_products, on="key")
    )
    groups = groups.with_columns(
        pl.when(pl.col("frequency") < config.min_count)
        .then(pl.format("frequency {} < min_count {}", pl.col("frequency"), pl.lit(config.min_count)))
        .when(pl.col("frequency") < pl.col("key_products") * config.min_share)
        .then(pl.format("frequency {} < min_share {} of {} products", pl.col("frequency"), pl.lit(config.min_share), pl.col("key_products")))
        .otherwise(None)
        .alias("frequency_problem")
    )

    # 4. judge, 5. safety, on the groups that survived the frequency filter
    survivors = [(k, v) for k, v in groups.filter(pl.col("frequency_problem").is_null()).select("key", "canonical").iter_rows()]
    verdicts = judge.judge(survivors) if survivors else {}
    group_rows = []
    for row in groups.iter_rows(named=True):
        key, canonical = row["key"], row["canonical"]
        verdict = verdicts.get((key, canonical))
        step, reason, judged_by = None, None, None
        if row["frequency_problem"]:
            step, reason = "frequency", row["frequency_problem"]
        elif verdict is not None:
            judged_by = verdict.judged_by
            if not verdict.keep:
                step, reason = "judge", f"judge ({verdict.judged_by}): {verdict.reason}"
        if step is None:
            hit = denylisted(canonical, denylist)
            if hit:
                step, reason = "safety", f"safety denylist: {hit!r}"
        group_rows.append({"key": key, "canonical": canonical, "group_step": step, "group_reason": reason, "judged_by": judged_by})
    decisions = pl.DataFrame(group_rows, schema={"key": pl.String, "canonical": pl.String, "group_step": pl.String, "group_reason": pl.String, "judged_by": pl.String})

    # one row per raw (key, value)
    rows = (
        raw.group_by("key", "value")
        .agg(
            pl.col("normalized").first(),
            pl.col("renamed").first(),
            pl.col("canonical").first(),
            pl.col("similarity").first(),
            pl.col("spelling").first(),
            pl.col("product_id").n_unique().alias("value_frequency"),
        )
        .join(groups.select("key", "canonical", "frequency", "merged_from"), on=["key", "canonical"])
        .join(decisions, on=["key", "canonical"])
    )
    vocabulary = pl.DataFrame([_decide(r, overrides) for r in rows.iter_rows(named=True)], schema=VOCABULARY_SCHEMA)
    if not empty.is_empty():
        vocabulary = pl.concat([vocabulary, _empty_rows(empty)])
    return vocabulary.sort("key", "canonical", "value")


def _decide(row: dict, overrides: pl.DataFrame) -> dict:
    """Status, step and reason of one raw value, overrides last (they win)."""
    key, value, normalized, canonical = row["key"], row["value"], row["normalized"], row["canonical"]
    status = "dropped" if row["group_step"] else "kept"
    step, reason = row["group_step"], row["group_reason"]
    if status == "kept":
        if row["renamed"] != normalized:
            step, reason = "override", f"override: renamed {normalized!r} to {row['renamed']!r}"
        elif canonical != row["renamed"]:
            step, reason = "merge", f"merged into {canonical!r} (cosine {row['similarity']:.2f}, spelling {row['spelling']:.2f})"
        elif value != canonical:
            step, reason = "normalization", f"normalized to {canonical!r}"
        else:
            step, reason = None, "kept"
    elif canonical != row["renamed"]:  # explain the merge of a dropped value too
        reason = f"{reason} (merged into {canonical!r}, cosine {row['similarity']:.2f})"
    override = allow_or_deny(overrides, key, normalized, canonical)
    if override is not None:
        note = f" ({override['note']})" if override["note"] else ""
        if override["action"] == "deny":
            status, step, reason = "dropped", "override", f"override: deny{note}"
        else:
            status, step = "kept", "override"
            reason = f"override: allow{note}" + (f"; was dropped: {row['group_reason']}" if row["group_step"] else "")
    return {
        "key": key,
        "value": value,
        "canonical": canonical,
        "frequency": row["frequency"],
        "merged_from": row["merged_from"],
        "status": status,
        "reason": reason,
        "normalized": normalized,
        "value_frequency": row["value_frequency"],
        "step": step,
        "similarity": row["similarity"],
        "judged_by": row["judged_by"],
    }


def _empty_rows(empty: pl.DataFrame) -> pl.DataFrame:
    counts = empty.group_by("key", "value").agg(pl.col("product_id").n_unique().alias("value_frequency"))
    return pl.DataFrame(
        [
            {"key": r["key"], "value": r["value"], "canonical": "", "frequency": 0, "merged_from": [r["value"]], "status": "dropped",
             "reason": "empty after normalization", "normalized": "", "value_frequency": r["value_frequency"], "step": "normalization",
             "similarity": None, "judged_by": None}
            for r in counts.iter_rows(named=True)
        ],
        schema=VOCABULARY_SCHEMA,
    )


def curation_funnel(vocabulary: pl.DataFrame) -> pl.DataFrame:
    """Vocabulary size per key after each step: distinct raw values, normalized values,
    canonical values after merging, then canonical values still alive after the frequency
    filter, the judge, the safety denylist and the overrides (= kept). A value an override
    decided counts as alive until the override column."""
    if vocabulary.is_empty():
        return pl.DataFrame(schema={"key": pl.String, **{s: pl.Int64 for s in STEPS}})
    rows = []
    for (key,), group in vocabulary.group_by("key", maintain_order=True):
        counts = {"key": key, "raw": group.get_column("value").n_unique(), "normalization": group.filter(pl.col("normalized") != "").get_column("normalized").n_unique()}
        counts["merge"] = group.filter(pl.col("canonical") != "").get_column("canonical").n_unique()
        alive = group.filter(pl.col("canonical") != "").with_columns(pl.col("step").fill_null("none"))
        for step in ("frequency", "judge", "safety"):
            alive = alive.filter(~((pl.col("status") == "dropped") & (pl.col("step") == step)))
            counts[step] = alive.get_column("canonical").n_unique()
        counts["override"] = group.filter(pl.col("status") == "kept").get_column("canonical").n_unique()
        rows.append(counts)
    return pl.DataFrame(rows, schema={"key": pl.String, **{s: pl.Int64 for s in STEPS}}).sort("key")


def kept_attributes(vocabulary: pl.DataFrame) -> pl.DataFrame:
    """The curated attribute set: one row per kept (key, canonical) with its frequency."""
    return (
        vocabulary.filter(pl.col("status") == "kept")
        .group_by("key", "canonical")
        .agg(pl.col("frequency").first())
        .rename({"canonical": "value"})
        .sort("key", "value")
    )


def canonical_labels(attributes: pl.DataFrame, vocabulary: pl.DataFrame) -> pl.DataFrame:
    """Map raw (product_id, key, value) rows onto kept canonical attributes; others vanish."""
    mapping = vocabulary.filter(pl.col("status") == "kept").select("key", "value", "canonical")
    return (
        attributes.with_columns(pl.col("key").map_elements(normalize_key, return_dtype=pl.String))
        .join(mapping, on=["key", "value"])
        .select("product_id", "key", pl.col("canonical").alias("value"))
        .unique()
    )
