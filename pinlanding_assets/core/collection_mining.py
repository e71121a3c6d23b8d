"""Collection mining (the `collection_queries` table): attribute combinations worth a
landing page, and their titles.

Mining (ours): every combination of 2-4 assigned attributes from different keys that
includes the product's type (the anchor), counted over products; combinations supported by
at least `min_support` products are candidates. Each candidate also carries a fingerprint of
its supporting product set, so two combinations that would show exactly the same products
("Black Watches for Men" and "Black Casual Watches for Men" when every black men's watch is
casual) are merged into the more general one.

Titles come from a `TitleWriter`: the offline default here is a template with a fixed key
order, plurals (`text_rules.display_plural`) and gender phrasing ("Navy Blue Casual Shirts
for Men") plus rule-based validation and a 1-5 quality score; `title_writer.LLMTitleWriter`
does the same three steps through an OpenAI-compatible endpoint.

Which keys make sense for which product types is learned, not listed (`KeyTypeCompatibility`):
from the teacher's labeled sample (its answers in the curated vocabulary), a key the teacher
names for far fewer products of a type than the type's size predicts ("color" on perfumes,
whose texts never name one) or a value it never gives a type although the key's overall
share predicts several ("style: polo" on sandals, "gender: men" on bras) makes a combination
invalid. Seasons are worded as a shopper says them: "Summer Dresses", but "White Shirts for
Men for Fall" rather than "Fall White Shirts for Men".

Slugs are human and come from the attribute set alone (never from the title), so the same
attributes give the same URL run after run, whichever writer ran: the values in a frozen key
order with the product type in the plural ("black-checked-casual-shirts-for-men"). Two sets
that read the same (one value under two keys) are told apart deterministically
(`assign_slugs`).
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import polars as pl

from .text_rules import PRODUCT_TYPE_KEY, display_plural, display_words, text_words
from .vocabulary import canonical_labels

ANCHOR_KEY = PRODUCT_TYPE_KEY  # every mined combination includes the product type
# Title order: when/where adjectives, colour, pattern, purpose, cut, material, then the
# product type as the head noun; gender becomes "for Men" (or a "Unisex" prefix).
TITLE_KEY_ORDER = ["season", "color", "pattern", "occasion", "style", "fit", "sleeve", "neckline", "length", "material", ANCHOR_KEY, "gender"]
# Slug order is frozen separately: a later change of title grammar must never move a URL.
SLUG_KEY_ORDER = ("season", "color", "pattern", "material", "style", "fit", "sleeve", "neckline", "length", "occasion", ANCHOR_KEY, "gender")
GENDER_PHRASES = {"men": "for Men", "women": "for Women", "boys": "for Boys", "girls": "for Girls", "kids": "for Kids", "unisex": "Unisex"}
STOPWORDS = {"for", "and", "the", "with", "of", "in", "s"}
# The characters a published title may use, as a regular-expression character class without
# its brackets: ASCII letters, digits, space and & ' -. Anything else (markup, emoji,
# invisible or right-to-left control characters) vetoes the title.
TITLE_CHARACTERS = "A-Za-z0-9 &'-"

COLLECTION_SCHEMA = {
    "slug": pl.String,
    "title": pl.String,
    "attributes": pl.List(pl.Struct({"key": pl.String, "value": pl.String})),
    "n_attributes": pl.Int64,
    "support": pl.Int64,
    "product_set": pl.String,
    "quality": pl.Int64,
    "status": pl.String,
    "reason": pl.String,
    "writer": pl.String,
}
COMBO_SCHEMA = {"combo": pl.String, "support": pl.Int64, "product_set": pl.String}

Attributes = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class MiningConfig:
    min_support: int = 10  # products a combination needs to be a page
    min_attributes: int = 2  # attributes per combination, the anchor included
    max_attributes: int = 4
    max_collections: int = 5000  # kept collections; the rest get template titles and are rejected
    quality_cutoff: int = 4  # a title scored below it (1-5) is rejected
    title_characters: str = TITLE_CHARACTERS  # a regex character class (no brackets); other characters veto a title
    # Learned key/type compatibility (`KeyTypeCompatibility`): a key, or a value, the teacher's
    # sample gives a product type at most `compatibility_max_ratio` times as often as expected
    # vetoes the combination, once at least `compatibility_min_expected` were expected; a value
    # only when the sample also gives it to at most `compatibility_max_value_products` products
    # of the type (rare is not wrong: 4 pink shoes among 1,084 still make a page).
    compatibility_min_expected: float = 5.0
    compatibility_max_ratio: float = 0.2
    compatibility_max_value_products: int = 2

    def __post_init__(self) -> None:
        title_character_pattern(self.title_characters)  # a clear error now, not mid-run


# -- mining ------------------------------------------------------------------------------


def _product_hash(product_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(product_id.encode(), digest_size=8).digest(), "big")


def mine_combinations(assignments: pl.DataFrame, config: MiningConfig) -> pl.DataFrame:
    """(combo, support, product_set) for every anchored combination with enough products.

    assignments: product_id, key, value (assigned attributes only). combo is a sorted tuple
    of "key=value" strings joined with "|"; product_set is an order-independent fingerprint
    of the supporting products (their count and the sum of 64-bit hashes of their ids).
    """
    support: dict[str, int] = {}
    hash_sums: dict[str, int] = {}
    per_product = assignments.unique(["product_id", "key", "value"]).group_by("product_id").agg(pl.struct("key", "value").alias("attrs"))
    for product_id, attrs in per_product.select("product_id", "attrs").iter_rows():
        product_hash = _product_hash(product_id)
        by_key: dict[str, list[str]] = {}
        for item in attrs:
            by_key.setdefault(item["key"], []).append(f"{item['key']}={item['value']}")
        anchors = by_key.pop(ANCHOR_KEY, [])
        others = sorted(by_key)
        for anchor in anchors:
            for n_more in range(max(config.min_attributes - 1, 1), config.max_attributes):
                for keys in itertools.combinations(others, n_more):
                    for values in itertools.product(*(by_key[k] for k in keys)):
                        combo = "|".join(sorted((anchor, *values)))
                        support[combo] = support.get(combo, 0) + 1
                        hash_sums[combo] = (hash_sums.get(combo, 0) + product_hash) & 0xFFFFFFFFFFFFFFFF
    frame = pl.DataFrame(
        {
            "combo": list(support),
            "support": list(support.values()),
            "product_set": [f"{support[c]}:{hash_sums[c]:016x}" for c in support],
        },
        schema=COMBO_SCHEMA,
    )
    return frame.filter(pl.col("support") >= config.min_support).sort(["support", "combo"], descending=[True, False])


def parse_combo(combo: str) -> Attributes:
    return tuple(tuple(part.split("=", 1)) for part in combo.split("|"))  # type: ignore[misc]


# -- the template title ---------------------------------------------------------------


def template_title(attributes: Sequence[tuple[str, str]]) -> str:
    """"Navy Blue Casual Shirts for Men" from {color: navy blue, occasion: casual, ...}.

    A season leads only as the sole modifier ("Summer Dresses for Women"); beside other
    adjectives it follows as "for Fall" ("White Shirts for Men for Fall"): "Fall White
    Shirts" is not how anyone searches."""
    by_key = dict(attributes)
    words: list[str] = []
    prefix = ""
    suffix = ""
    modifiers = [k for k in by_key if k not in (ANCHOR_KEY, "gender", "season")]
    season_trails = "season" in by_key and bool(modifiers)
    order = TITLE_KEY_ORDER + sorted(k for k in by_key if k not in TITLE_KEY_ORDER)
    for key in order:
        if key not in by_key or (key == "season" and season_trails):
            continue
        value = by_key[key]
        if key == ANCHOR_KEY:
            words.append(display_words(display_plural(value)))
        elif key == "gender":
            phrase = GENDER_PHRASES.get(value, f"for {display_words(value)}")
            if phrase.startswith("for "):
                suffix = " " + phrase
            else:
                prefix = phrase + " "
        else:
            words.append(display_words(value))
    if season_trails:
        suffix += " for " + display_words(by_key["season"])
    return (prefix + " ".join(words) + suffix).strip()


# -- learned key/type compatibility -------------------------------------------------------


@dataclass(frozen=True)
class KeyTypeCompatibility:
    """Which keys, and which values, the teacher gives which product types: learned from its
    labeled sample (product_id, key, value in the curated vocabulary), never from catalog
    labels.

    For a product type T with n_T labeled products, a key K the teacher names for a share s_K
    of all labeled products is expected on n_T * s_K of them; a value v that is a share s_v of
    the key's answers is expected on n_TK * s_v of the T products with a K answer. Observed at
    most `max_ratio` times the expected count, once at least `min_expected` were expected, the
    key (or value) does not go with the type: no title on a perfume's colour (its texts never
    name one), a sandal's "polo" style (a brand, not a style of sandal), a bra "for Men". A type,
    key or value the sample is too small to judge is never vetoed: the rules only say no with
    evidence."""

    types: dict[str, int] = field(default_factory=dict)  # product type -> labeled products
    keys: dict[tuple[str, str], int] = field(default_factory=dict)  # (type, key) -> products with an answer
    values: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (type, key, value) -> products
    key_share: dict[str, float] = field(default_factory=dict)  # key -> share of labeled products with an answer
    value_share: dict[tuple[str, str], float] = field(default_factory=dict)  # (key, value) -> share of the key's answering products
    min_expected: float = MiningConfig.compatibility_min_expected
    max_ratio: float = MiningConfig.compatibility_max_ratio
    max_value_products: int = MiningConfig.compatibility_max_value_products

    @classmethod
    def learn(cls, labeled: pl.DataFrame, config: MiningConfig | None = None) -> "KeyTypeCompatibility":
        """From the teacher's answers (product_id, key, value); empty: judges nothing."""
        config = config or MiningConfig()
        limits = {"min_expected": config.compatibility_min_expected, "max_ratio": config.compatibility_max_ratio, "max_value_products": config.compatibility_max_value_products}
        labeled = labeled.select("product_id", "key", "value").unique()
        typed = labeled.filter(pl.col("key") == ANCHOR_KEY).select("product_id", pl.col("value").alias("type"))
        n_products = typed.get_column("product_id").n_unique()
        if not n_products:
            return cls(**limits)
        others = labeled.filter(pl.col("key") != ANCHOR_KEY).join(typed, on="product_id")
        types = dict(typed.group_by("type").agg(pl.col("product_id").n_unique()).iter_rows())
        keys_by_type = others.group_by("type", "key").agg(pl.col("product_id").n_unique().alias("n"))
        values_by_type = others.group_by("type", "key", "value").agg(pl.col("product_id").n_unique().alias("n"))
        answering = others.group_by("key").agg(pl.col("product_id").n_unique().alias("n"))
        key_total = dict(answering.iter_rows())
        value_counts = others.group_by("key", "value").agg(pl.col("product_id").n_unique().alias("n"))
        return cls(
            types=types,
            keys={(t, k): n for t, k, n in keys_by_type.iter_rows()},
            values={(t, k, v): n for t, k, v, n in values_by_type.iter_rows()},
            key_share={k: n / n_products for k, n in key_total.items()},
            value_share={(k, v): n / key_total[k] for k, v, n in value_counts.iter_rows()},
            **limits,
        )

    @property
    def empty(self) -> bool:
        return not self.types

    def _unlikely(self, observed: int, expected: float) -> bool:
        return expected >= self.min_expected and observed <= self.max_ratio * expected

    def problem(self, product_type: str, key: str, value: str) -> str | None:
        """Why (key, value) does not go with `product_type`, by the teacher's sample; None
        when it does or the sample cannot tell."""
        n_type = self.types.get(product_type, 0)
        if not n_type or key == ANCHOR_KEY:
            return None
        with_key = self.keys.get((product_type, key), 0)
        expected_key = n_type * self.key_share.get(key, 0.0)
        if self._unlikely(with_key, expected_key):
            return f"'{key}' is rarely a key of '{product_type}' (teacher named it for {with_key} of {n_type}, {expected_key:.0f} expected)"
        with_value = self.values.get((product_type, key, value), 0)
        expected_value = with_key * self.value_share.get((key, value), 0.0)
        if with_value <= self.max_value_products and self._unlikely(with_value, expected_value):
            return f"'{key}: {value}' does not go with '{product_type}' (teacher gave it {with_value} of {with_key}, {expected_value:.0f} expected)"
        return None

    def as_metadata(self) -> dict[str, int]:
        return {"compatibility_types": len(self.types), "compatibility_labeled_products": sum(self.types.values())}


NO_COMPATIBILITY = KeyTypeCompatibility()


def learned_compatibility(raw_attributes: pl.DataFrame, vocabulary: pl.DataFrame, assignments: pl.DataFrame, config: MiningConfig | None = None) -> tuple[KeyTypeCompatibility, str]:
    """What the offline judge learns key/type fit from, and its name: the teacher's labeled
    sample (`raw_attributes`) mapped onto the curated vocabulary, or the model's assignments
    where no sample is stored."""
    sample = canonical_labels(raw_attributes, vocabulary) if not raw_attributes.is_empty() and not vocabulary.is_empty() else pl.DataFrame()
    source, labeled = ("teacher sample", sample) if not sample.is_empty() else ("assigned attributes", assignments)
    return KeyTypeCompatibility.learn(labeled, config), source


# -- rule-based validation and score --------------------------------------------------


@dataclass(frozen=True)
class Judgement:
    """A validation verdict and a 1-5 quality score for one titled combination."""

    quality: int
    reason: str | None  # why it is invalid; None when valid


def title_character_pattern(allowed: str) -> re.Pattern[str]:
    """The pattern a title must match in full; a clear error for a malformed allow-list."""
    if not allowed:
        raise ValueError("title_characters is empty: no title could be published")
    try:
        return re.compile(f"[{allowed}]+")
    except re.error as exc:
        raise ValueError(f"title_characters {allowed!r} is not a valid character class ({exc})") from None


def character_problem(title: str, allowed: str = TITLE_CHARACTERS) -> str | None:
    """Why `title` may not be published for its characters (None when it may)."""
    pattern = title_character_pattern(allowed)
    if not title:
        return "empty title"
    if pattern.fullmatch(title):
        return None
    outside = sorted({ch for ch in title if not pattern.fullmatch(ch)})
    return "characters outside the allow-list: " + " ".join(repr(ch) for ch in outside[:10])


def validate_and_score(
    attributes: Sequence[tuple[str, str]], title: str, allowed_characters: str = TITLE_CHARACTERS, compatibility: KeyTypeCompatibility = NO_COMPATIBILITY
) -> Judgement:
    """Rule-based semantic validation and a 1-5 quality score (offline stand-in for the LLM).
    A title with characters outside `allowed_characters` is invalid, whatever its score; so
    is a combination whose key or value the teacher's sample says does not go with its
    product type (`compatibility`, learned)."""
    problem = character_problem(title, allowed_characters)
    if problem:
        return Judgement(1, problem)
    values = [v for _, v in attributes]
    if len(set(values)) < len(values):
        return Judgement(1, "repeated value")
    by_key = dict(attributes)
    anchor = by_key.get(ANCHOR_KEY, "")
    anchor_words = set(text_words(anchor))
    for key, value in attributes:
        if key != ANCHOR_KEY and set(text_words(value)) <= anchor_words:
            return Judgement(2, f"{key} '{value}' repeats the product type")
    for key, value in sorted(attributes):
        mismatch = compatibility.problem(anchor, key, value)
        if mismatch:
            return Judgement(1, mismatch)
    score = 5
    if len(title) > 60:
        score -= 1
    if len(attributes) >= 4:
        score -= 1
    score = max(score, 1)
    return Judgement(score, None)


def _slug_words(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def collection_slug(attributes: Sequence[tuple[str, str]]) -> str:
    """Human and stable: the values in a frozen key order, the product type in the plural,
    the gender as "for-men" ("black-checked-casual-shirts-for-men"; "unisex-black-backpacks").
    Two attribute sets can read the same: `assign_slugs` tells them apart."""
    order = {k: i for i, k in enumerate(SLUG_KEY_ORDER)}
    prefix, words, suffix = [], [], []
    for key, value in sorted(attributes, key=lambda kv: (order.get(kv[0], len(order)), kv[0], kv[1])):
        if key == ANCHOR_KEY:
            words.append(display_plural(value))
        elif key == "gender":
            (prefix if value == "unisex" else suffix).append(value if value == "unisex" else f"for {value}")
        else:
            words.append(value)
    slug = _slug_words(" ".join(prefix + words + suffix))[:100].strip("-")
    return slug or "collection"


def combo_key(attributes: Iterable[tuple[str, str]]) -> str:
    """The attribute set as one sorted string ("color=black|product_type=watch")."""
    return "|".join(sorted(f"{k}={v}" for k, v in attributes))


def assign_slugs(attribute_sets: Sequence[Sequence[tuple[str, str]]]) -> list[str]:
    """A unique slug per attribute set, in order. Sets whose human slugs collide (one value
    under two keys: pattern "checked" and style "checked") are ordered by their sorted
    attributes; the first keeps the slug, each other gets the keys of its attributes as a
    suffix ("checked-shirts-style"), then a counter if that still collides. The outcome
    depends only on the sets, not on their order."""
    base = [collection_slug(a) for a in attribute_sets]
    by_base: dict[str, list[int]] = {}
    for i, slug in enumerate(base):
        by_base.setdefault(slug, []).append(i)
    out = list(base)
    taken = set(base)
    for slug, members in by_base.items():
        if len(members) == 1:
            continue
        members = sorted(members, key=lambda i: combo_key(attribute_sets[i]))
        for i in members[1:]:
            keys = "-".join(sorted(k for k, _ in attribute_sets[i] if k != ANCHOR_KEY)) or "type"
            candidate = f"{slug}-{_slug_words(keys)}"[:120]
            n = 2
            while candidate in taken:
                candidate = f"{slug}-{_slug_words(keys)}-{n}"[:120]
                n += 1
            taken.add(candidate)
            out[i] = candidate
    return out


def title_fingerprint(title: str) -> str:
    """Near-duplicate key: the title's folded words (`text_rules.text_words`), sorted,
    without small words ("Shirts for Men" ~ "Men Shirt", "T-Shirts" ~ "Tshirt")."""
    return " ".join(sorted(w for w in text_words(title) if w not in STOPWORDS))


# -- writers --------------------------------------------------------------------------


@dataclass(frozen=True)
class TitleCandidate:
    slug: str
    attributes: Attributes
    support: int


@dataclass(frozen=True)
class TitledCollection:
    slug: str
    title: str
    quality: int  # 1-5
    reason: str | None  # None when valid
    writer: str


class TitleWriter(Protocol):
    """Validation -> title -> 1-5 quality score for a batch of candidates, in order."""

    name: str

    def write(self, candidates: Sequence[TitleCandidate]) -> list[TitledCollection]: ...


class TemplateTitleWriter:
    """The offline writer: template titles, rule-based validation (with the learned key/type
    compatibility) and score."""

    name = "template"

    def __init__(self, title_characters: str = TITLE_CHARACTERS, compatibility: KeyTypeCompatibility = NO_COMPATIBILITY):
        self.title_characters = title_characters
        self.compatibility = compatibility

    def write(self, candidates: Sequence[TitleCandidate]) -> list[TitledCollection]:
        out = []
        for candidate in candidates:
            title = template_title(candidate.attributes)
            judgement = validate_and_score(candidate.attributes, title, self.title_characters, self.compatibility)
            out.append(TitledCollection(candidate.slug, title, judgement.quality, judgement.reason, self.name))
        return out


def _merge_order(combos: pl.DataFrame) -> pl.DataFrame:
    """Best-supported first; among equals the most general (fewest attributes) first, so a
    merge keeps "Black Watches for Men" over "Black Casual Watches for Men"."""
    return combos.with_columns(pl.col("combo").str.count_matches(r"\|").add(1).alias("_n")).sort(["support", "_n", "combo"], descending=[True, False, False]).drop("_n")


def write_collections(
    combos: pl.DataFrame, config: MiningConfig, writer: TitleWriter | None = None, batch_size: int = 500, compatibility: KeyTypeCompatibility = NO_COMPATIBILITY
) -> pl.DataFrame:
    """Titles, quality and status (kept / rejected / merged) for mined combinations.

    A kept collection has a valid title with quality >= the cutoff; among kept ones, a
    near-duplicate title or an identical product set merges into the first (best-supported,
    most general) collection; at most `max_collections` stay kept. Candidates go to the
    writer in batches, best-supported first, and once `max_collections` are kept the rest
    get template titles only: a paid writer is never asked about pages that cannot be kept.
    `compatibility` is what the offline writers judge with (the learned key/type fit).
    """
    writer = writer or TemplateTitleWriter(config.title_characters, compatibility)
    offline = TemplateTitleWriter(config.title_characters, compatibility)
    ordered = _merge_order(combos)
    attribute_sets = [parse_combo(combo) for combo in ordered.get_column("combo").to_list()]
    candidates = [
        TitleCandidate(slug, attributes, support)
        for slug, attributes, support in zip(assign_slugs(attribute_sets), attribute_sets, ordered.get_column("support").to_list())
    ]
    product_sets = ordered.get_column("product_set").to_list()
    rows = []
    seen_titles: dict[str, str] = {}
    seen_sets: dict[str, str] = {}
    n_kept = 0
    for start in range(0, len(candidates), batch_size):
        batch = candidates[start : start + batch_size]
        full = n_kept >= config.max_collections
        titled = (offline if full else writer).write(batch)
        if len(titled) != len(batch):
            raise RuntimeError(f"title writer returned {len(titled)} results for {len(batch)} candidates")
        for candidate, result, product_set in zip(batch, titled, product_sets[start : start + batch_size]):
            status, reason = "kept", None
            if result.reason is not None:
                status, reason = "rejected", result.reason
            elif result.quality < config.quality_cutoff:
                status, reason = "rejected", f"quality {result.quality} < cutoff {config.quality_cutoff}"
            else:
                fingerprint = title_fingerprint(result.title)
                if fingerprint in seen_titles:
                    status, reason = "merged", f"near-duplicate title of {seen_titles[fingerprint]}"
                elif product_set in seen_sets:
                    status, reason = "merged", f"same products as {seen_sets[product_set]}"
                elif n_kept >= config.max_collections:
                    status, reason = "rejected", f"beyond max_collections {config.max_collections}"
                else:
                    seen_titles[fingerprint] = candidate.slug
                    seen_sets[product_set] = candidate.slug
                    n_kept += 1
            rows.append(
                {
                    "slug": candidate.slug,
                    "title": result.title,
                    "attributes": [{"key": k, "value": v} for k, v in sorted(candidate.attributes)],
                    "n_attributes": len(candidate.attributes),
                    "support": candidate.support,
                    "product_set": product_set,
                    "quality": result.quality,
                    "status": status,
                    "reason": reason,
                    "writer": result.writer,
                }
            )
    return pl.DataFrame(rows, schema=COLLECTION_SCHEMA)


def collection_attribute_rows(collections: pl.DataFrame) -> pl.DataFrame:
    """slug, key, value, n_attributes for kept collections (the matching input)."""
    schema = {"slug": pl.String, "key": pl.String, "value": pl.String, "n_attributes": pl.Int64}
    if collections.is_empty():
        return pl.DataFrame(schema=schema)
    return (
        collections.filter(pl.col("status") == "kept")
        .select("slug", "n_attributes", "attributes")
        .explode("attributes")
        .unnest("attributes")
        .select("slug", "key", "value", "n_attributes")
        .cast(schema)  # type: ignore[arg-type]
    )
