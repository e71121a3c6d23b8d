"""Collection mining, template titles, rule-based validation, merging and stable slugs."""

from __future__ import annotations

import polars as pl
import pytest

from pinlanding_assets.core.collection_mining import (
    KeyTypeCompatibility,
    MiningConfig,
    TemplateTitleWriter,
    TitleCandidate,
    assign_slugs,
    collection_attribute_rows,
    collection_slug,
    mine_combinations,
    template_title,
    title_fingerprint,
    validate_and_score,
    write_collections,
)
from pinlanding_assets.core.text_rules import normalize_value


@pytest.mark.parametrize(
    ("article_type", "expected"),
    [
        ("Tshirts", "Navy Blue Casual T-Shirts for Men"),
        ("Casual Shoes", "Navy Blue Casual Shoes for Men"),  # occasion dropped below: see validation
        ("Watches", "Navy Blue Casual Watches for Men"),
        ("Flip Flops", "Navy Blue Casual Flip Flops for Men"),
        ("Kurtas", "Navy Blue Casual Kurtas for Men"),
        ("Track Pants", "Navy Blue Casual Track Pants for Men"),
        ("Bra", "Navy Blue Casual Bras for Men"),
        ("Perfume and Body Mist", "Navy Blue Casual Perfume and Body Mist for Men"),
        ("Shirts", "Navy Blue Casual Shirts for Men"),
        ("Dresses", "Navy Blue Casual Dresses for Men"),
        ("Necklace and Chains", "Navy Blue Casual Necklaces and Chains for Men"),
        ("Clutches", "Navy Blue Casual Clutches for Men"),
    ],
)
def test_template_titles_for_real_article_types(article_type: str, expected: str) -> None:
    product_type = normalize_value("product_type", article_type)  # as the vocabulary stores it
    attributes = [("product_type", product_type), ("color", "navy blue"), ("gender", "men")]
    if product_type != "casual shoe":
        attributes.append(("occasion", "casual"))
    title = template_title(attributes)
    assert title == expected.replace("Casual Casual", "Casual")


def test_template_gender_phrasing_and_unisex_prefix() -> None:
    assert template_title([("product_type", "handbag"), ("color", "black"), ("gender", "women")]) == "Black Handbags for Women"
    assert template_title([("product_type", "backpack"), ("gender", "unisex"), ("color", "multi")]) == "Unisex Multicolour Backpacks"
    assert template_title([("gender", "girls"), ("product_type", "top"), ("season", "summer")]) == "Summer Tops for Girls"


def test_a_season_leads_alone_and_trails_beside_other_adjectives() -> None:
    fall_shirts = [("product_type", "shirt"), ("color", "white"), ("gender", "men"), ("season", "fall")]
    assert template_title(fall_shirts) == "White Shirts for Men for Fall"  # not "Fall White Shirts for Men"
    assert template_title([("product_type", "dress"), ("season", "summer")]) == "Summer Dresses"
    assert template_title([("product_type", "backpack"), ("gender", "unisex"), ("season", "winter"), ("color", "black")]) == "Unisex Black Backpacks for Winter"


def test_rules_reject_redundant_and_contradictory_combinations() -> None:
    redundant = [("product_type", "casual shoe"), ("occasion", "casual")]
    assert validate_and_score(redundant, template_title(redundant)).reason == "occasion 'casual' repeats the product type"
    sports = [("product_type", "sports shoe"), ("occasion", "sports"), ("gender", "men")]
    assert validate_and_score(sports, template_title(sports)).reason is not None
    good = [("product_type", "shirt"), ("color", "navy blue"), ("gender", "men")]
    assert validate_and_score(good, template_title(good)).quality == 5
    hostile = [("product_type", "shirt"), ("color", "<script>")]
    assert validate_and_score(hostile, template_title(hostile)).quality < 4


@pytest.mark.parametrize("title", ["<Script> Shirts", "Red Shirts 🔥", "Red\u202eShirts", "Red Shirts!", "Red\nShirts"])
def test_characters_outside_the_allow_list_veto_a_title(title: str) -> None:
    attributes = [("product_type", "shirt"), ("color", "red")]
    judgement = validate_and_score(attributes, title)
    assert judgement.reason is not None and judgement.reason.startswith("characters outside the allow-list")
    assert validate_and_score(attributes, "Red T-Shirts & Tops for Men's").reason is None


def test_the_title_allow_list_is_configurable() -> None:
    ecru = [("product_type", "shirt"), ("color", "écru")]
    assert validate_and_score(ecru, template_title(ecru)).reason == "characters outside the allow-list: 'É'"
    assert validate_and_score(ecru, template_title(ecru), allowed_characters="A-Za-zÉé0-9 &'-").reason is None
    rows = [(f"p{i}", k, v) for i in range(12) for k, v in ecru]
    frame = pl.DataFrame(rows, schema={"product_id": pl.String, "key": pl.String, "value": pl.String}, orient="row")
    default = MiningConfig(min_support=10)
    assert write_collections(mine_combinations(frame, default), default).get_column("status").to_list() == ["rejected"]
    accented = MiningConfig(min_support=10, title_characters="A-Za-zÉé0-9 &'-")
    assert write_collections(mine_combinations(frame, accented), accented).get_column("status").to_list() == ["kept"]
    with pytest.raises(ValueError, match="not a valid character class"):
        MiningConfig(title_characters="z-a")


def test_slugs_are_human_and_depend_only_on_the_attribute_set() -> None:
    a = [("product_type", "shirt"), ("color", "navy blue"), ("gender", "men")]
    assert collection_slug(a) == collection_slug(list(reversed(a)))
    assert collection_slug(a) == "navy-blue-shirts-for-men"  # frozen: a URL people link to
    assert collection_slug([("product_type", "shirt"), ("color", "black"), ("pattern", "checked"), ("occasion", "casual")]) == "black-checked-casual-shirts"
    assert collection_slug([("product_type", "backpack"), ("gender", "unisex"), ("color", "black")]) == "unisex-black-backpacks"
    assert collection_slug(a) != collection_slug([("product_type", "shirt"), ("color", "navy blue"), ("gender", "women")])


def test_slug_collisions_are_resolved_the_same_way_in_any_order() -> None:
    checked_pattern = (("product_type", "shirt"), ("pattern", "checked"))
    checked_style = (("product_type", "shirt"), ("style", "checked"))
    plain = (("product_type", "shirt"),)
    first = assign_slugs([checked_pattern, checked_style, plain])
    second = assign_slugs([plain, checked_style, checked_pattern])
    assert first == ["checked-shirts", "checked-shirts-style", "shirts"]
    assert second == list(reversed(first))  # the same slug for the same set, whatever the order
    assert len(set(first)) == 3


def test_near_duplicate_fingerprint() -> None:
    assert title_fingerprint("T-Shirts for Men") == title_fingerprint("Men Tshirt")
    assert title_fingerprint("Black Shirts for Men") != title_fingerprint("Black Shirts for Women")


def assignments(rows: dict[str, list[tuple[str, str]]]) -> pl.DataFrame:
    return pl.DataFrame(
        [(pid, k, v) for pid, attrs in rows.items() for k, v in attrs], schema={"product_id": pl.String, "key": pl.String, "value": pl.String}, orient="row"
    )


def catalog(n_casual_black: int = 6, n_formal_black: int = 0, n_white: int = 5) -> pl.DataFrame:
    rows = {}
    for i in range(n_casual_black):
        rows[f"cb{i}"] = [("product_type", "watch"), ("color", "black"), ("gender", "men"), ("occasion", "casual")]
    for i in range(n_formal_black):
        rows[f"fb{i}"] = [("product_type", "watch"), ("color", "black"), ("gender", "men"), ("occasion", "formal")]
    for i in range(n_white):
        rows[f"w{i}"] = [("product_type", "shirt"), ("color", "white"), ("gender", "women")]
    return assignments(rows)


def test_mining_counts_anchored_combinations_with_enough_support() -> None:
    combos = mine_combinations(catalog(), MiningConfig(min_support=5, max_attributes=4))
    got = dict(combos.select("combo", "support").iter_rows())
    assert got["color=black|product_type=watch"] == 6
    assert got["color=black|gender=men|occasion=casual|product_type=watch"] == 6
    assert got["color=white|gender=women|product_type=shirt"] == 5
    assert all("product_type=" in c for c in got)  # anchored
    assert "color=black|gender=men" not in got
    assert mine_combinations(catalog(), MiningConfig(min_support=7)).is_empty()


def test_identical_product_sets_merge_into_the_most_general_collection() -> None:
    config = MiningConfig(min_support=5, max_attributes=3)
    collections = write_collections(mine_combinations(catalog(), config), config)
    kept = collections.filter(pl.col("status") == "kept")
    # every black men's watch is casual: one page for all of those combinations
    watch_titles = [t for t in kept.get_column("title").to_list() if "Watches" in t]
    assert watch_titles == ["Black Watches"]
    merged = collections.filter(pl.col("status") == "merged")
    assert set(merged.get_column("title").to_list()) >= {"Black Watches for Men", "Casual Watches for Men"}
    watch_merges = merged.filter(pl.col("title").str.contains("Watches"))
    assert watch_merges.height == 5 and all(r == "same products as black-watches" for r in watch_merges.get_column("reason").to_list())


def test_different_product_sets_stay_separate() -> None:
    config = MiningConfig(min_support=3, max_attributes=3)
    collections = write_collections(mine_combinations(catalog(n_casual_black=4, n_formal_black=4), config), config)
    kept = set(collections.filter(pl.col("status") == "kept").get_column("title").to_list())
    assert {"Black Watches", "Casual Watches", "Formal Watches"} <= kept  # 8, 4 and 4 products
    assert len(kept) == collections.filter(pl.col("status") == "kept").height  # titles unique


def test_quality_cutoff_and_max_collections() -> None:
    config = MiningConfig(min_support=5, max_attributes=4, quality_cutoff=5, max_collections=2)
    collections = write_collections(mine_combinations(catalog(n_casual_black=6, n_formal_black=6), config), config)
    kept = collections.filter(pl.col("status") == "kept")
    assert kept.height == 2
    assert (kept.get_column("quality") >= 5).all()
    reasons = collections.filter(pl.col("status") == "rejected").get_column("reason").to_list()
    assert any(r.startswith("quality 4 < cutoff 5") for r in reasons)
    assert any(r == "beyond max_collections 2" for r in reasons)


def test_slugs_are_stable_across_runs_and_writers() -> None:
    config = MiningConfig(min_support=5)
    first = write_collections(mine_combinations(catalog(), config), config)
    second = write_collections(mine_combinations(catalog(n_white=9), config), config)
    shared = first.join(second, on="slug", suffix="_2")
    assert shared.height == first.height
    assert (shared.get_column("attributes") == shared.get_column("attributes_2")).all()


def test_collection_attribute_rows_are_the_matching_input() -> None:
    config = MiningConfig(min_support=5, max_attributes=3)
    collections = write_collections(mine_combinations(catalog(), config), config)
    rows = collection_attribute_rows(collections)
    kept = collections.filter(pl.col("status") == "kept")
    assert set(rows.get_column("slug").unique().to_list()) == set(kept.get_column("slug").to_list())
    assert rows.columns == ["slug", "key", "value", "n_attributes"]
    assert collection_attribute_rows(pl.DataFrame()).is_empty()


def test_near_duplicate_titles_merge_even_with_different_products() -> None:
    rows = {f"a{i}": [("product_type", "shirt"), ("pattern", "checked")] for i in range(5)}
    rows |= {f"b{i}": [("product_type", "shirt"), ("style", "checked")] for i in range(6)}
    config = MiningConfig(min_support=5)
    collections = write_collections(mine_combinations(assignments(rows), config), config)
    assert collections.get_column("title").to_list() == ["Checked Shirts", "Checked Shirts"]
    assert collections.get_column("status").to_list() == ["kept", "merged"]
    assert collections.get_column("support").to_list() == [6, 5]  # the better-supported one stays
    assert collections.get_column("reason")[1].startswith("near-duplicate title of checked-shirts")
    assert collections.get_column("slug").n_unique() == 2  # the colliding slugs told apart


def teacher_sample() -> pl.DataFrame:
    """A teacher's labeled sample: shirts get colours, styles and genders; perfumes never a
    colour; sandals strappy or slip-on, never polo; bras only for women."""
    rows = {}
    for i in range(30):
        rows[f"shirt{i}"] = [("product_type", "shirt"), ("color", ["white", "black", "red"][i % 3]), ("gender", ["men", "women"][i % 2]), ("style", "polo")]
    for i in range(20):
        rows[f"perfume{i}"] = [("product_type", "perfume and body mist"), ("gender", ["men", "women"][i % 2])]
    for i in range(20):
        rows[f"sandal{i}"] = [("product_type", "sandal"), ("color", "brown"), ("style", ["strappy", "slip on"][i % 2]), ("gender", "men")]
    for i in range(20):
        rows[f"bra{i}"] = [("product_type", "bra"), ("color", "black"), ("gender", "women")]
    rows["rare0"] = [("product_type", "umbrella"), ("color", "red")]
    return assignments(rows)


def test_key_and_type_compatibility_is_learned_from_the_teachers_sample() -> None:
    fit = KeyTypeCompatibility.learn(teacher_sample())
    assert fit.problem("perfume and body mist", "color", "red").startswith("'color' is rarely a key of 'perfume and body mist'")
    assert fit.problem("sandal", "style", "polo").startswith("'style: polo' does not go with 'sandal'")
    assert fit.problem("bra", "gender", "men").startswith("'gender: men' does not go with 'bra'")
    assert fit.problem("shirt", "color", "red") is None and fit.problem("sandal", "style", "strappy") is None
    assert fit.problem("bra", "gender", "women") is None and fit.problem("shirt", "style", "polo") is None
    assert fit.problem("umbrella", "style", "polo") is None  # one labeled umbrella: too few to judge
    assert fit.problem("scarf", "color", "red") is None  # a type the teacher never labeled
    assert KeyTypeCompatibility.learn(teacher_sample().head(0)).problem("bra", "gender", "men") is None


def test_a_rare_value_the_teacher_gave_a_type_several_times_is_not_vetoed() -> None:
    """Rare is not wrong: on the full catalog the ratio alone vetoed pink shoes (4 of 1,084
    shoes in the sample), men's kurtas (13 of 366) and printed shirts (9 of 445). A value is
    refused only when the sample also gives it to at most `compatibility_max_value_products`
    products of the type."""
    rows = {f"shoe{i}": [("product_type", "shoe"), ("color", "black")] for i in range(200)}
    rows |= {f"pink{i}": [("product_type", "shoe"), ("color", "pink")] for i in range(4)}
    rows |= {f"top{i}": [("product_type", "top"), ("color", "pink")] for i in range(200)}
    sample = assignments(rows)
    assert KeyTypeCompatibility.learn(sample).problem("shoe", "color", "pink") is None
    strict = KeyTypeCompatibility.learn(sample, MiningConfig(compatibility_max_value_products=4))
    assert strict.problem("shoe", "color", "pink").startswith("'color: pink' does not go with 'shoe'")


def test_the_offline_judge_refuses_titles_its_learned_compatibility_rejects() -> None:
    fit = KeyTypeCompatibility.learn(teacher_sample())
    candidates = [
        TitleCandidate("red-perfume", (("product_type", "perfume and body mist"), ("color", "red")), 12),
        TitleCandidate("polo-sandals", (("product_type", "sandal"), ("style", "polo")), 12),
        TitleCandidate("bras-for-men", (("product_type", "bra"), ("gender", "men")), 12),
        TitleCandidate("red-shirts", (("product_type", "shirt"), ("color", "red")), 12),
    ]
    perfume, sandals, bras, shirts = TemplateTitleWriter(compatibility=fit).write(candidates)
    assert (perfume.title, perfume.reason is not None) == ("Red Perfume and Body Mist", True)
    assert "polo" in sandals.reason and "men" in bras.reason
    assert (shirts.title, shirts.reason, shirts.quality) == ("Red Shirts", None, 5)
    # Without a learned fit nothing is vetoed for it (the rules only say no with evidence).
    assert all(r.reason is None for r in TemplateTitleWriter().write(candidates))
    # Through write_collections: the compatibility passed in judges the offline writer.
    product_rows = assignments({f"p{i}": [("product_type", "perfume and body mist"), ("color", "red")] for i in range(12)})
    config = MiningConfig(min_support=10)
    collections = write_collections(mine_combinations(product_rows, config), config, compatibility=fit)
    assert collections.get_column("status").to_list() == ["rejected"] and "color" in collections.get_column("reason")[0]
