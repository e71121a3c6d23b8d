"""The hand-written attribute words the offline teacher looks for in product text.

One place for every word list about attribute values: colours (and their reference RGB for
naming a pixel colour), genders, patterns, materials, cuts, occasions, seasons. Each entry is
`phrase -> value`: several phrases may name one value ("gents" -> men, "autumn" -> fall).
There is deliberately no list of product nouns: product types are discovered from each
shard's own titles (`type_discovery`).
"""

from __future__ import annotations

from .text_rules import PhraseIndex, text_words

# Colour words. Reference RGB only for the colours a pixel vote may name.
COLOR_PHRASES: dict[str, str] = {
    p: p
    for p in (
        "black", "white", "blue", "navy blue", "red", "green", "grey", "pink", "yellow", "brown", "purple",
        "orange", "beige", "maroon", "olive", "silver", "gold", "cream", "charcoal", "peach", "off white",
        "lavender", "grey melange", "khaki", "magenta", "teal", "tan", "mustard", "bronze", "copper",
        "turquoise blue", "rust", "burgundy", "metallic", "coffee brown", "mauve", "sea green", "nude",
        "rose", "mushroom brown", "taupe", "lime green", "fluorescent green", "steel", "multi", "skin",
    )
} | {"gray": "grey", "navy": "navy blue", "multicolour": "multi", "multicolor": "multi", "multicoloured": "multi", "golden": "gold", "offwhite": "off white"}
PIXEL_COLORS: dict[str, tuple[int, int, int]] = {
    "black": (25, 25, 25), "white": (240, 240, 240), "grey": (128, 128, 128), "charcoal": (60, 62, 66),
    "navy blue": (30, 40, 90), "blue": (45, 95, 200), "teal": (0, 120, 120), "red": (200, 35, 40),
    "green": (45, 135, 65), "olive": (110, 110, 50), "yellow": (230, 200, 50), "pink": (235, 135, 170),
    "brown": (110, 72, 40), "purple": (110, 50, 140), "orange": (235, 120, 40),
    "beige": (215, 195, 160), "maroon": (120, 25, 40), "silver": (190, 190, 195), "gold": (200, 160, 60),
}
# "kids" is an age group, not a gender: "Kids Boys T-shirt" is for boys.
GENDER_PHRASES: dict[str, str] = {
    "men": "men", "man": "men", "male": "men", "gents": "men", "women": "women", "woman": "women",
    "female": "women", "ladies": "women", "boys": "boys", "boy": "boys", "girls": "girls", "girl": "girls", "unisex": "unisex",
}
OCCASION_PHRASES: dict[str, str] = {
    "casual": "casual", "formal": "formal", "sports": "sports", "sport": "sports", "running": "sports",
    "training": "sports", "gym": "sports", "party": "party", "partywear": "party", "ethnic": "ethnic",
    "festive": "ethnic", "travel": "travel",
}
SEASON_PHRASES: dict[str, str] = {"summer": "summer", "winter": "winter", "spring": "spring", "fall": "fall", "autumn": "fall"}


def _same(*phrases: str) -> dict[str, str]:
    return {p: p for p in phrases}


ATTRIBUTE_PHRASES: dict[str, dict[str, str]] = {
    "color": COLOR_PHRASES,
    "gender": GENDER_PHRASES,
    "occasion": OCCASION_PHRASES,
    "season": SEASON_PHRASES,
    "pattern": _same("striped", "checked", "printed", "solid", "floral", "polka dot", "self design", "graphic", "colourblocked", "embroidered", "camouflage", "abstract", "geometric", "typography", "paisley", "animal print")
    | {"stripes": "striped", "checks": "checked", "print": "printed", "colour block": "colourblocked"},
    "material": _same("cotton", "denim", "leather", "linen", "silk", "wool", "polyester", "canvas", "suede", "chiffon", "georgette", "satin", "velvet", "fleece", "nylon", "jute", "crepe", "knit", "lycra", "rubber", "steel", "ceramic", "brass")
    | {"woollen": "wool"},
    "fit": _same("slim fit", "regular fit", "skinny", "loose fit", "relaxed fit", "comfort fit", "straight fit", "tapered"),
    "neckline": _same("round neck", "v neck", "polo collar", "high neck", "mandarin collar", "boat neck", "henley", "turtle neck", "collar"),
    "sleeve": _same("sleeveless", "full sleeve", "half sleeve", "short sleeve", "long sleeve", "3/4 sleeve", "cap sleeve"),
    "length": _same("mini", "midi", "maxi", "knee length", "ankle length", "three fourth", "cropped"),
    "style": _same("polo", "hooded", "zipper", "lace up", "slip on", "chronograph", "analog", "digital", "aviator", "wayfarer", "low top", "high top", "strappy", "pleated", "ruffled", "distressed", "washed")
    | {"analogue": "analog"},
}
# Values known to be distinct within a key: never merged by the curation's embedding step,
# however close their embeddings (MiniLM puts colours and genders close together).
DISTINCT_VALUES: dict[str, set[str]] = {
    "color": set(COLOR_PHRASES) | set(COLOR_PHRASES.values()),
    "gender": set(GENDER_PHRASES.values()),
    "season": set(SEASON_PHRASES.values()),
    "sleeve": set(ATTRIBUTE_PHRASES["sleeve"].values()),
    "fit": set(ATTRIBUTE_PHRASES["fit"].values()),
}


def attribute_index() -> PhraseIndex:
    """Every lexicon phrase, searchable in product text."""
    index = PhraseIndex()
    for key, phrases in ATTRIBUTE_PHRASES.items():
        for phrase, value in phrases.items():
            index.add(key, phrase, value)
    return index


def lexicon_words() -> set[str]:
    """The folded one-word lexicon phrases ("black", "men", "casual"): words that name an
    attribute value on their own, so never a product type. Words of longer phrases ("top"
    of "low top", "short" of "short sleeve") may still be product nouns."""
    return {words[0] for phrases in ATTRIBUTE_PHRASES.values() for phrase in phrases if len(words := text_words(phrase)) == 1}
