"""Collection queries: attribute combinations worth a landing page, and their titles.

Mining (ours): every combination of 2-4 assigned attributes from different keys that
includes the product's type (the anchor), counted over products; combinations supported by
at least `min_support` products are candidates. The offline title writer is a template with
a fixed key order, plurals and gender phrasing ("Navy Blue Casual Shirts for Men"); rule-based
validation and a 1-5 quality score stand in for the LLM's. Slugs come from the attribute set
alone, so the same attributes give the same URL run after run.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass

import polars as pl

ANCHOR_KEY = "product_type"
# Title order: adjectives first, the product type as the head noun, gender as "for ...".
TITLE_KEY_ORDER = ["season", "color", "pattern", "material", "style", "fit", "sleeve", "neckline", "length", "occasion", ANCHOR_KEY, "gender"]
GENDER_PHRASES = {"men": "for Men", "women": "for Women", "boys": "for Boys", "girls": "for Girls", "unisex": "Unisex", "kids": "for Kids"}
DISPLAY = {"tshirt": "T-Shirt", "tshirts": "T-Shirts"}
NO_PLURAL = {"jeans", "trousers", "shorts", "leggings", "sunglasses", "pants", "briefs", "capris", "tights", "track pants", "jeggings", "innerwear vests", "flip flops", "sandals", "heels", "flats", "socks", "trunks", "dupatta", "nightwear", "swimwear", "perfume and body mist", "deodorant", "lipstick", "kajal and eyeliner", "nail polish"}
COLLECTION_SCHEMA = {
    "slug": pl.String,
    "title": pl.String,
    "attributes": pl.List(pl.Struct({"key": pl.String, "value": pl.String})),
    "n_attributes": pl.Int64,
    "support": pl.Int64,
    "quality": pl.Int64,
    "status": pl.String,
    "reason": pl.String,
    "writer": pl.String,
}


@dataclass(frozen=True)
class MiningConfig:
    min_support: int = 10
    min_attributes: int = 2
    max_attributes: int = 4
    max_collections: int = 5000
    quality_cutoff: int = 4


def mine_combinations(assignments: pl.DataFrame, config: MiningConfig) -> pl.DataFrame:
    """(combo, support) for every anchored attribute combination with enough products.

    assignments: product_id, key, value (assigned attributes only). combo is a sorted
    tuple of "key=value" strings, serialized with "|".
    """
    rows: dict[str, int] = {}
    per_product = assignments.group_by("product_id").agg(pl.struct("key", "value").alias("attrs"))
    for attrs in per_product.get_column("attrs").to_list():
        by_key: dict[str, list[str]] = {}
        for item in attrs:
            by_key.setdefault(item["key"], []).append(f"{item['key']}={item['value']}")
        anchors = by_key.pop(ANCHOR_KEY, [])
        others = sorted(by_key)
        for anchor in anchors:
            for n_more in range(config.min_attributes - 1, config.max_attributes):
                for keys in itertools.combinations(others, n_more):
                    for values in itertools.product(*(by_key[k] for k in keys)):
                        combo = "|".join(sorted((anchor, *values)))
                        rows[combo] = rows.get(combo, 0) + 1
    frame = pl.DataFrame({"combo": list(rows), "support": list(rows.values())}, schema={"combo": pl.String, "support": pl.Int64})
    return frame.filter(pl.col("support") >= config.min_support).sort(["support", "combo"], descending=[True, False])


def parse_combo(combo: str) -> list[tuple[str, str]]:
    return [tuple(part.split("=", 1)) for part in combo.split("|")]  # type: ignore[misc]


def pluralize(noun: str) -> str:
    if noun in NO_PLURAL or noun.endswith("s") and not noun.endswith(("ss", "us")):
        return noun
    head, _, last = noun.rpartition(" ")
    if last.endswith("y") and last[-2:-1] not in "aeiou":
        last = last[:-1] + "ies"
    elif last.endswith(("ch", "sh", "ss", "x")):
        last += "es"
    else:
        last += "s"
    return f"{head} {last}".strip()


def display_words(text: str) -> str:
    """Title case per word and per hyphenated part: "t-shirts" -> "T-Shirts"."""
    return " ".join(DISPLAY.get(w, "-".join(p[:1].upper() + p[1:] for p in w.split("-"))) for w in text.split(" "))


def template_title(attributes: list[tuple[str, str]]) -> str:
    """"Navy Blue Casual Shirts for Men" from {color: navy blue, occasion: casual, ...}."""
    by_key = dict(attributes)
    words: list[str] = []
    suffix = ""
    order = TITLE_KEY_ORDER + sorted(k for k in by_key if k not in TITLE_KEY_ORDER)
    for key in order:
        if key not in by_key:
            continue
        value = by_key[key]
        if key == ANCHOR_KEY:
            words.append(display_words(pluralize(value)))
        elif key == "gender":
            phrase = GENDER_PHRASES.get(value, f"for {display_words(value)}")
            if phrase.startswith("for "):
                suffix = " " + phrase
            else:
                words.insert(0, phrase)
        else:
            words.append(display_words(value))
    return (" ".join(words) + suffix).strip()


def validate_and_score(attributes: list[tuple[str, str]], title: str) -> tuple[int, str | None]:
    """Rule-based semantic validation and a 1-5 quality score (offline stand-in for the LLM)."""
    values = [v for _, v in attributes]
    if len(set(values)) < len(values):
        return 1, "repeated value"
    anchor = dict(attributes).get(ANCHOR_KEY, "")
    for key, value in attributes:
        if key != ANCHOR_KEY and value in anchor.split():
            return 2, f"{key} '{value}' repeats the product type"
    score = 5
    if len(title) > 60:
        score -= 1
    if len(attributes) >= 4:
        score -= 1
    if not re.fullmatch(r"[A-Za-z0-9&' \-]+", title):
        score -= 2
    return score, None if score >= 1 else "unreadable"


def collection_slug(attributes: list[tuple[str, str]]) -> str:
    """Readable and stable: the values in title order, plus a short hash of the exact set
    (two sets can share their values under different keys)."""
    order = {k: i for i, k in enumerate(TITLE_KEY_ORDER)}
    ordered = sorted(attributes, key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
    readable = re.sub(r"[^a-z0-9]+", "-", " ".join(v for _, v in ordered).lower()).strip("-")
    digest = hashlib.sha1("|".join(sorted(f"{k}={v}" for k, v in attributes)).encode()).hexdigest()[:6]
    return f"{readable[:80]}-{digest}"


def title_fingerprint(title: str) -> str:
    """Near-duplicate key: lowercase words, singular, sorted ("Shirts for Men" ~ "Men Shirt")."""
    words = re.findall(r"[a-z0-9]+", title.lower())
    return " ".join(sorted(w.rstrip("s") for w in words if w not in {"for", "and", "the"}))


def write_collections(combos: pl.DataFrame, config: MiningConfig) -> pl.DataFrame:
    """Titles, quality and status for mined combinations; near-duplicate titles merged into
    the best-supported one."""
    rows = []
    seen_fingerprints: dict[str, str] = {}
    for combo, support in combos.select("combo", "support").iter_rows():
        attributes = parse_combo(combo)
        title = template_title(attributes)
        quality, reason = validate_and_score(attributes, title)
        status = "kept" if quality >= config.quality_cutoff and reason is None else "rejected"
        if status == "rejected" and reason is None:
            reason = f"quality {quality} < cutoff {config.quality_cutoff}"
        fingerprint = title_fingerprint(title)
        if status == "kept" and fingerprint in seen_fingerprints:
            status, reason = "merged", f"near-duplicate of {seen_fingerprints[fingerprint]}"
        slug = collection_slug(attributes)
        if status == "kept":
            seen_fingerprints[fingerprint] = slug
        rows.append(
            {
                "slug": slug,
                "title": title,
                "attributes": [{"key": k, "value": v} for k, v in sorted(attributes)],
                "n_attributes": len(attributes),
                "support": support,
                "quality": quality,
                "status": status,
                "reason": reason,
                "writer": "template",
            }
        )
    frame = pl.DataFrame(rows, schema=COLLECTION_SCHEMA)
    kept = frame.filter(pl.col("status") == "kept")
    if kept.height > config.max_collections:
        over = set(kept.get_column("slug").to_list()[config.max_collections:])
        frame = frame.with_columns(
            pl.when(pl.col("slug").is_in(list(over))).then(pl.lit("rejected")).otherwise(pl.col("status")).alias("status"),
            pl.when(pl.col("slug").is_in(list(over))).then(pl.lit(f"beyond max_collections {config.max_collections}")).otherwise(pl.col("reason")).alias("reason"),
        )
    return frame


def collection_attribute_rows(collections: pl.DataFrame) -> pl.DataFrame:
    """slug, key, value, n_attributes for kept collections (the matching input)."""
    return (
        collections.filter(pl.col("status") == "kept")
        .select("slug", "n_attributes", "attributes")
        .explode("attributes")
        .unnest("attributes")
        .select("slug", "key", "value", "n_attributes")
    )
