"""Vocabulary curation: from the extractor's long, noisy tail to a compact attribute set.

Steps, each recorded in the output so every dropped or merged value is explained:
normalization (case, whitespace, punctuation, plural -> singular, obvious synonyms), then a
frequency filter (minimum product count and minimum share of the key's labeled products).
Output: one row per raw (key, value) with its canonical form, frequency, status and reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

# Words whose plural is their only form, or whose "s" is not a plural.
INVARIANT = {
    "jeans", "trousers", "shorts", "leggings", "sunglasses", "pants", "briefs", "boxers", "capris",
    "tights", "track pants", "jeggings", "dress", "glass", "canvas", "lotus", "chinos", "joggers",
    "flip flops", "sandals", "heels", "flats", "socks", "trunks", "innerwear vests", "swimwear",
    "nightwear", "loungewear", "sleepwear", "dungarees", "salwar", "churidar", "accessories",
    "gloves", "cufflinks", "suspenders", "earrings", "mufflers", "stoles", "scarves", "headphones",
    "dupatta", "kurtas", "casual", "sports", "unisex", "boys", "girls", "men", "women", "wallets",
}
SYNONYMS = {
    ("color", "gray"): "grey",
    ("color", "navy"): "navy blue",
    ("color", "off-white"): "off white",
    ("gender", "male"): "men",
    ("gender", "female"): "women",
    ("gender", "man"): "men",
    ("gender", "woman"): "women",
    ("product_type", "tshirt"): "t-shirt",
    ("product_type", "tee"): "t-shirt",
    ("product_type", "t shirt"): "t-shirt",
    ("season", "autumn"): "fall",
}


def singular(word_phrase: str) -> str:
    """Singular form of the last word of a phrase ("casual shoes" -> "casual shoe")."""
    if word_phrase in INVARIANT:
        return word_phrase
    head, _, last = word_phrase.rpartition(" ")
    if last in INVARIANT or len(last) <= 3:
        return word_phrase
    if last.endswith("ies") and len(last) > 4:
        last = last[:-3] + "y"
    elif last.endswith(("ches", "shes", "sses", "xes")):
        last = last[:-2]
    elif last.endswith("s") and not last.endswith(("ss", "us", "is")):
        last = last[:-1]
    return f"{head} {last}".strip()


def normalize_value(key: str, value: str) -> str:
    """Canonical form of one attribute value."""
    text = value.lower().strip()
    text = re.sub(r"[_/]+", " ", text)
    text = re.sub(r"[^a-z0-9&\- ]+", "", text)
    text = re.sub(r"\s+", " ", text).strip(" -")
    text = SYNONYMS.get((key, text), text)
    if key in ("product_type", "material", "pattern"):
        text = singular(text)
    return SYNONYMS.get((key, text), text)


def normalize_key(key: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", key.lower()).strip("_")


@dataclass(frozen=True)
class CurationConfig:
    min_count: int = 5
    min_share: float = 0.002  # of the key's labeled products


VOCABULARY_SCHEMA = {
    "key": pl.String,
    "value": pl.String,
    "canonical": pl.String,
    "frequency": pl.Int64,
    "merged_from": pl.List(pl.String),
    "status": pl.String,
    "reason": pl.String,
}


def curate_vocabulary(raw_attributes: pl.DataFrame, config: CurationConfig) -> pl.DataFrame:
    """One row per raw (key, value): canonical form, frequency, status (kept/dropped), reason."""
    if raw_attributes.is_empty():
        return pl.DataFrame(schema=VOCABULARY_SCHEMA)
    raw = raw_attributes.select("product_id", "key", "value").with_columns(
        pl.col("key").map_elements(normalize_key, return_dtype=pl.String),
    )
    raw = raw.with_columns(
        pl.struct("key", "value")
        .map_elements(lambda r: normalize_value(r["key"], r["value"]), return_dtype=pl.String)
        .alias("canonical")
    ).filter(pl.col("canonical") != "")
    key_products = raw.group_by("key").agg(pl.col("product_id").n_unique().alias("key_products"))
    canonical = (
        raw.group_by("key", "canonical")
        .agg(
            pl.col("product_id").n_unique().alias("frequency"),
            pl.col("value").unique().sort().alias("merged_from"),
        )
        .join(key_products, on="key")
        .with_columns(
            pl.when(pl.col("frequency") < config.min_count)
            .then(pl.format("frequency {} < min_count {}", pl.col("frequency"), pl.lit(config.min_count)))
            .when(pl.col("frequency") < pl.col("key_products") * config.min_share)
            .then(pl.format("share below min_share {}", pl.lit(config.min_share)))
            .otherwise(None)
            .alias("reason")
        )
        .with_columns(pl.when(pl.col("reason").is_null()).then(pl.lit("kept")).otherwise(pl.lit("dropped")).alias("status"))
    )
    per_value = raw.select("key", "value", "canonical").unique()
    return (
        per_value.join(canonical, on=["key", "canonical"])
        .with_columns(
            pl.when((pl.col("status") == "kept") & (pl.col("value") != pl.col("canonical")))
            .then(pl.lit("normalized"))
            .otherwise(pl.col("reason"))
            .alias("reason")
        )
        .select(list(VOCABULARY_SCHEMA))
        .sort("key", "canonical", "value")
    )


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
