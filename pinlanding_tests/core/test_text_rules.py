"""Text rules: folding, mentions by the head-noun rule, and how discovered values map onto
catalog labels (strict / lenient)."""

from __future__ import annotations

import pytest

from pinlanding_assets.core.text_rules import (
    BrandPrefixes,
    PhraseIndex,
    display_plural,
    display_words,
    fold_word,
    is_wordlike,
    normalize_key,
    normalize_value,
    singular_value,
    spelling_variant,
    text_words,
    values_match,
)


def test_folding_makes_plurals_and_spellings_comparable() -> None:
    assert [fold_word(w) for w in ("shoes", "scarves", "kurtis", "dresses", "watches", "ties", "sleeves", "jeans")] == [
        "shoe", "scarf", "kurti", "dress", "watch", "tie", "sleeve", "jean"]
    assert text_words("Men's T-Shirts & Tees") == ["men", "tshirt", "tshirt"]
    assert [is_wordlike(w) for w in ("watch", "mtp", "ml", "02", "ef", "deo")] == [True, False, False, False, False, True]


def test_mentions_take_the_last_product_type_and_the_first_colour() -> None:
    index = PhraseIndex()
    for key, phrase in (("product_type", "shoe"), ("product_type", "casual shoe"), ("product_type", "bag"), ("color", "black"), ("color", "navy blue"), ("color", "blue")):
        index.add(key, phrase, phrase)
    assert index.find("Puma Men Navy Blue Black Shoe Bag") == {"product_type": "bag", "color": "navy blue"}
    assert index.find("Nike Black Casual Shoes") == {"product_type": "casual shoe", "color": "black"}
    assert index.find("A bag to go with your shoes", prose=True)["product_type"] == "bag"  # prose: first mention


def test_a_colour_in_a_brand_name_is_not_the_product_colour() -> None:
    index = PhraseIndex()
    for key, phrase in (("product_type", "shoe"), ("product_type", "shirt"), ("color", "red"), ("color", "brown"), ("color", "black"), ("gender", "men")):
        index.add(key, phrase, phrase)
    titles = [f"Red Tape Men {colour} Formal Shoe" for colour in ("Brown", "Black") * 5] + ["Red Tape Men Formal Shoe"]
    titles += ["Red Shirt for Men"] * 10 + ["Red Checked Shirt"] * 9 + ["Red Checked Shirt with Black Buttons"]
    brands = BrandPrefixes.learn(titles, index)
    assert brands.hidden == frozenset({("color", ("red", "tape"))})  # "red checked": 1 of 10 names another colour
    assert index.find("Red Tape Men Brown Formal Shoe", brands=brands)["color"] == "brown"
    assert "color" not in index.find("Red Tape Men Formal Shoe", brands=brands)  # the pixels will say
    assert index.find("Red Shirt for Men", brands=brands)["color"] == "red"
    assert index.find("Red Tape Men Brown Formal Shoe")["color"] == "red"  # without brands: the first colour
    assert len(BrandPrefixes.learn(titles[:7], index)) == 0  # too few titles to call it a brand


@pytest.mark.parametrize(
    ("predicted", "label", "strict", "lenient"),
    [
        ("shoe", "Casual Shoes", False, True),  # coarser name of the same thing
        ("sandals", "Sports Sandals", False, True),
        ("dial watch", "Watches", False, True),  # finer
        ("perfume", "Perfume and Body Mist", False, True),  # one part of an "A and B" category
        ("duffle bag", "Duffel Bag", False, True),  # spelling variant
        ("t-shirt", "Tshirts", True, True),
        ("shirt", "Tshirts", False, False),  # whole words: not a t-shirt
        ("ring", "Earrings", False, False),
        ("bra", "Bracelet", False, False),
        ("shoe", "Shoe Laces", False, False),  # not the same head noun
        ("shirt", "Skirts", False, False),  # a changed letter is another word
        ("deo", "Deodorant", False, False),  # an abbreviation is for the "mapped" rule to learn
    ],
)
def test_discovered_values_against_catalog_labels(predicted: str, label: str, strict: bool, lenient: bool) -> None:
    assert values_match(predicted, label.lower(), "product_type") is strict
    assert values_match(predicted, label.lower(), "product_type", "lenient") is lenient


def test_lenient_applies_to_product_types_only() -> None:
    assert not values_match("navy blue", "blue", "color", "lenient")
    assert values_match("navy blue", "navy blue", "color", "lenient")
    assert spelling_variant("sharpner", "sharpener") and not spelling_variant("tshirt", "shirt")


# Inflection of the catalog's tricky nouns, pinned before the rules were gathered in one
# module (they lived in vocabulary.py, collections.py (now collection_mining.py) and
# bench/keyword_baseline.py): the singular a value is stored in, the plural a title shows,
# and the words a title is compared by. A change in any column is a decision, not an accident: stored values and titles make
# slugs and pages. The one decided change: titles are compared by `text_words`, like every
# other text, where a stemmer of their own cut only a final "s" ("watche", "dresse",
# "accessorie", "t" + "shirt").
INFLECTIONS = [
    # phrase, stored singular, title plural, title words
    ("shoes", "shoe", "shoes", "shoe"),
    ("casual shoes", "casual shoe", "casual shoes", "casual shoe"),
    ("scarves", "scarves", "scarves", "scarf"),
    ("kurtis", "kurtis", "kurtis", "kurti"),
    ("kurtas", "kurtas", "kurtas", "kurta"),
    ("dresses", "dress", "dresses", "dress"),
    ("dress", "dress", "dresses", "dress"),
    ("watches", "watch", "watches", "watch"),
    ("watch", "watch", "watches", "watch"),
    ("jeans", "jeans", "jeans", "jean"),
    ("glasses", "glass", "glasses", "glass"),
    ("sunglasses", "sunglasses", "sunglasses", "sunglass"),
    ("briefs", "briefs", "briefs", "brief"),
    ("shorts", "shorts", "shorts", "short"),
    ("trousers", "trousers", "trousers", "trouser"),
    ("track pants", "track pants", "track pants", "track pant"),
    ("perfume and body mist", "perfume and body mist", "perfume and body mist", "perfume and body mist"),
    ("necklace and chain", "necklace and chain", "necklaces and chains", "necklace and chain"),
    ("t-shirts", "t-shirt", "t-shirts", "tshirt"),
    ("tshirts", "tshirt", "tshirts", "tshirt"),
    ("bags", "bag", "bags", "bag"),
    ("heels", "heels", "heels", "heel"),
    ("flats", "flats", "flats", "flat"),
    ("flip flops", "flip flops", "flip flops", "flip flop"),
    ("capris", "capris", "capris", "capri"),
    ("leggings", "leggings", "leggings", "legging"),
    ("boxers", "boxers", "boxers", "boxer"),
    ("ties", "tie", "ties", "tie"),
    ("accessories", "accessories", "accessories", "accessory"),
    ("wallets", "wallets", "wallets", "wallet"),
    ("canvas", "canvas", "canvas", "canva"),
    ("sports", "sports", "sports", "sport"),
    ("boys", "boys", "boys", "boy"),
    ("innerwear vests", "innerwear vests", "innerwear vests", "innerwear vest"),
    ("nightwear", "nightwear", "nightwear", "nightwear"),
    ("footwear", "footwear", "footwear", "footwear"),
    ("lipstick", "lipstick", "lipstick", "lipstick"),
    ("nail polish", "nail polish", "nail polish", "nail polish"),
    ("lip gloss", "lip gloss", "lip gloss", "lip gloss"),
    ("dupatta", "dupatta", "dupatta", "dupatta"),
    ("salwar", "salwar", "salwar", "salwar"),
    ("sarees", "saree", "sarees", "saree"),
    ("belts", "belt", "belts", "belt"),
    ("boxes", "box", "boxes", "box"),
    ("brushes", "brush", "brushes", "brush"),
    ("jewellery", "jewellery", "jewellery", "jewellery"),
    ("sleeves", "sleeve", "sleeves", "sleeve"),
    ("stripes", "stripe", "stripes", "stripe"),
]


@pytest.mark.parametrize(("phrase", "stored", "plural", "title_words"), INFLECTIONS)
def test_inflection_of_catalog_nouns(phrase: str, stored: str, plural: str, title_words: str) -> None:
    assert singular_value(phrase) == stored
    assert display_plural(phrase) == plural
    assert text_words(phrase) == title_words.split()


def test_value_normalization_and_display() -> None:
    assert [normalize_value("product_type", v) for v in ("Tshirts", "T Shirt", "Tees", "Kurtis", "Casual Shoes", "Jeans")] == [
        "t-shirt", "t-shirt", "t-shirt", "kurtis", "casual shoe", "jeans"]
    assert [normalize_value("color", v) for v in ("Gray", "Navy", "Multi Color", "Off-White", "Blacks")] == ["grey", "navy blue", "multi", "off white", "blacks"]
    assert [normalize_value("material", v) for v in ("Canvas", "Cotton_Blend", "Leathers")] == ["canvas", "cotton blend", "leather"]
    assert normalize_value("sleeve", "Full Sleeves") == "full sleeve" and normalize_value("pattern", "Stripes") == "striped"
    assert normalize_value("product_type", "  Ties & Cufflinks!! ") == "ties & cufflinks"
    assert normalize_key("Product Type") == "product_type" and normalize_key("label-Color ") == "label_color"
    assert [display_words(display_plural(v)) for v in ("t-shirt", "perfume and body mist", "casual shoe", "watch")] == [
        "T-Shirts", "Perfume and Body Mist", "Casual Shoes", "Watches"]
    assert display_words("multi") == "Multicolour" and display_words("navy blue") == "Navy Blue"


def test_title_fingerprints_read_titles_like_every_other_text() -> None:
    from pinlanding_assets.core.collection_mining import title_fingerprint

    assert text_words("Men's Black Tees") == ["men", "black", "tshirt"]
    assert title_fingerprint("T-Shirts for Men") == title_fingerprint("Men Tshirt") == title_fingerprint("Men's Tees") == "men tshirt"
    # the title stemmer before text_words kept "watche" apart from "watch"
    assert title_fingerprint("Black Watches for Men") == title_fingerprint("Men Black Watch")


def _mentions_key_by_key(index: PhraseIndex, words: list[str]) -> list[tuple[int, str, str]]:
    """The reading rule spelled out slowly: per key, left to right, the longest phrase at a
    position wins and its words are skipped."""
    found = []
    longest = max((len(p) for phrases in index._phrases.values() for p in phrases), default=1)
    for key, phrases in index._phrases.items():
        i = 0
        while i < len(words):
            for length in range(min(longest, len(words) - i), 0, -1):
                value = phrases.get(tuple(words[i : i + length]))
                if value is not None:
                    found.append((i, key, value))
                    i += length
                    break
            else:
                i += 1
    return found


def test_mentions_read_every_key_in_one_pass_as_key_by_key(shared_dataset) -> None:
    import polars as pl

    from pinlanding_assets.core.lexicon import attribute_index

    index = attribute_index()
    for key, phrase in (("product_type", "shoe"), ("product_type", "casual shoe"), ("product_type", "sport shoe"), ("product_type", "tshirt"), ("product_type", "watch")):
        index.add(key, phrase, phrase)
    titles = pl.read_csv(shared_dataset / "styles.csv", columns=["productDisplayName"]).get_column("productDisplayName").drop_nulls().head(3000).to_list()
    for title in titles + ["Navy Blue Blue Navy", "red red red tape"]:
        words = text_words(title)
        assert index.mentions(words) == _mentions_key_by_key(index, words), title
        assert index.mentions(words) == _mentions_key_by_key(index, words)  # remembered: the same
