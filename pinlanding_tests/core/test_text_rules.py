"""Text rules: folding, mentions by the head-noun rule, and how discovered values map onto
catalog labels (strict / lenient)."""

from __future__ import annotations

import pytest

from pinlanding_assets.core.text_rules import BrandPrefixes, PhraseIndex, fold_word, is_wordlike, spelling_variant, text_words, values_match


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
