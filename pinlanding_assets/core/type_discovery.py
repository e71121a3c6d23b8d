"""Product types discovered from a shard's own titles (no hand list of product nouns).

English product titles end with the head noun: "Puma Men Black Running Shoes",
"Titan Women Silver Watch", "Lakme Absolute Lip Gloss". Mining (ours), per shard:

1. each title's *head*: its last word-like word (`text_rules.is_wordlike`: model codes,
   sizes and units such as "MTP-1234" or "100 ml" are skipped);
2. a word is a product type when it heads at least `min_count` titles (and
   `min_share` of the shard), is the head in at least `min_head_share` of the titles that
   contain it (colours and "casual" appear mid-title far more than last), rarely opens a
   title (`max_leading_share`: brand names do), and is no attribute word of the lexicon
   (a colour, a gender, a pattern ...);
3. a compound "x y" (y a type) is a product type of its own ("casual shoes", "flip flops",
   "track pants") when it occurs `min_count` times, under at least `min_compound_brands`
   different brands (first words: "Rasasi Chastity Deo" is a product line, not a type), and
   x stands before y in at least `min_attachment` of its uses, and x is neither an attribute
   word nor a type itself.

Words are compared folded (`text_rules.fold_word`: "shoes" = "shoe"); a type's value is the
most frequent spelling it had in the titles. Near-duplicate spellings across shards are
merged later by the vocabulary curation (MiniLM + spelling).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .lexicon import lexicon_words
from .text_rules import PRODUCT_TYPE_KEY, PhraseIndex, fold_word, is_wordlike, raw_words

# Function words that never head a product phrase.
FUNCTION_WORDS = {"and", "with", "for", "of", "the", "in", "set", "pack", "pair", "combo", "new"}


@dataclass(frozen=True)
class DiscoveryConfig:
    """The thresholds of the mining rules in the module's docstring."""

    min_count: int = 3  # titles a word (or compound) must head to be a product type ...
    min_share: float = 0.001  # ... and this share of the shard's titles
    min_head_share: float = 0.4  # of the titles that contain the word, the share it heads
    max_leading_share: float = 0.5  # of them, the most it may open (brand names do)
    min_compound_brands: int = 3  # different first words (brands) a compound "x y" needs
    min_attachment: float = 0.5  # of x's uses, the share standing before y


@dataclass(frozen=True)
class DiscoveredType:
    value: str  # the most frequent spelling, lower case ("shoes", "flip flops")
    words: tuple[str, ...]  # folded
    count: int  # titles whose head it is


def _head_position(words: Sequence[str]) -> int | None:
    for i in range(len(words) - 1, -1, -1):
        if is_wordlike(words[i]):
            return i
    return None


def discover_product_types(titles: Sequence[str], config: DiscoveryConfig = DiscoveryConfig()) -> list[DiscoveredType]:
    """The product types named by these titles (one shard), most frequent first."""
    excluded = lexicon_words() | FUNCTION_WORDS
    raw = [raw_words(t) for t in titles]
    folded = [[fold_word(w) for w in ws] for ws in raw]
    heads: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    leading: Counter[str] = Counter()
    spellings: dict[tuple[str, ...], Counter[str]] = {}
    for ws, rs in zip(folded, raw):
        for w in set(ws):
            anywhere[w] += 1
        if ws:
            leading[ws[0]] += 1
        head = _head_position(ws)
        if head is not None:
            heads[ws[head]] += 1
    threshold = max(config.min_count, config.min_share * len(titles))
    types = {
        w for w, n in heads.items()
        if n >= threshold and is_wordlike(w) and w not in excluded
        and n / anywhere[w] >= config.min_head_share and leading[w] / anywhere[w] <= config.max_leading_share
    }
    compounds: Counter[tuple[str, str]] = Counter()
    compound_brands: dict[tuple[str, str], set[str]] = {}
    for ws, rs in zip(folded, raw):
        for i in range(1, len(ws)):
            if ws[i] in types:
                pair = (ws[i - 1], ws[i])
                compounds[pair] += 1
                compound_brands.setdefault(pair, set()).add(ws[0])
                spellings.setdefault(pair, Counter())[f"{rs[i - 1]} {rs[i]}"] += 1
        for i, w in enumerate(ws):
            if w in types:
                spellings.setdefault((w,), Counter())[rs[i]] += 1
    kept_compounds = {
        pair for pair, n in compounds.items()
        if n >= threshold and is_wordlike(pair[0]) and pair[0] not in excluded and pair[0] not in types
        and len(compound_brands[pair]) >= config.min_compound_brands and n / anywhere[pair[0]] >= config.min_attachment
    }
    counts = type_counts(folded, types, kept_compounds)
    found = [
        DiscoveredType(spellings[words].most_common(1)[0][0], words, n)
        for words, n in counts.items()
        if n >= config.min_count
    ]
    return sorted(found, key=lambda t: (-t.count, t.value))


def type_counts(folded_titles: Sequence[Sequence[str]], types: set[str], compounds: set[tuple[str, str]]) -> Counter[tuple[str, ...]]:
    """How many titles each type (single word or compound) heads, by the last-mention rule."""
    index = PhraseIndex()
    for w in types:
        index.add(PRODUCT_TYPE_KEY, w, w)
    for x, y in compounds:
        index.add(PRODUCT_TYPE_KEY, f"{x} {y}", f"{x} {y}")
    counts: Counter[tuple[str, ...]] = Counter()
    for ws in folded_titles:
        mentions = [m for m in index.mentions(ws) if m[1] == PRODUCT_TYPE_KEY]
        if mentions:
            counts[tuple(max(mentions)[2].split())] += 1
    return counts
