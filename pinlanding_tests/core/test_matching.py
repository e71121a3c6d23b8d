"""The matching rule on the DuckDB reference: tiny hand-made frames plus a brute-force
cross-check on generated inputs."""

from __future__ import annotations

import math

import polars as pl
import pytest

from pinlanding_assets.core.matching import PAGE_SCHEMA, MatchingConfig, match_pages_duckdb, synthetic_inputs


def products(rows: list[tuple[str, str, str, float]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"product_id": pl.String, "key": pl.String, "value": pl.String, "probability": pl.Float32}, orient="row")


def collections(spec: dict[str, list[tuple[str, str]]]) -> pl.DataFrame:
    rows = [(slug, k, v, len(attrs)) for slug, attrs in spec.items() for k, v in attrs]
    return pl.DataFrame(rows, schema={"slug": pl.String, "key": pl.String, "value": pl.String, "n_attributes": pl.Int64}, orient="row")


BLACK_TEES = {"black-tees": [("product_type", "t-shirt"), ("color", "black")]}


def test_product_joins_only_with_every_attribute_and_is_ranked_by_mean_probability() -> None:
    frame = products(
        [
            ("a", "product_type", "t-shirt", 0.875), ("a", "color", "black", 0.625),  # 0.546875
            ("b", "product_type", "t-shirt", 1.0), ("b", "color", "black", 1.0),  # 1.0
            ("c", "product_type", "t-shirt", 1.0), ("c", "color", "white", 1.0),  # wrong colour
            ("d", "color", "black", 1.0),  # no type
            ("e", "product_type", "t-shirt", 0.625), ("e", "color", "black", 0.875),  # ties with a
            ("f", "product_type", "t-shirt", 0.5), ("f", "color", "black", 1.0),  # mean 0.75, joint 0.5: last
        ]
    )
    pages = match_pages_duckdb(frame, collections(BLACK_TEES), MatchingConfig(min_relevance=0.5, min_page_size=1, max_page_size=10))
    assert pages.get_column("product_id").to_list() == ["b", "a", "e", "f"]  # tie broken by product id
    assert pages.get_column("rank").to_list() == [1, 2, 3, 4]
    assert pages.get_column("relevance").to_list() == [1.0, 0.546875, 0.546875, 0.5]  # binary-exact: a true tie
    assert pages.schema == pl.Schema(PAGE_SCHEMA)


def test_min_relevance_and_page_size_bounds() -> None:
    rows = []
    for i in range(8):
        p = 0.3 + 0.1 * i  # 0.3 .. 1.0
        rows += [(f"p{i}", "product_type", "t-shirt", p), (f"p{i}", "color", "black", p)]
    frame = products(rows)
    pages = match_pages_duckdb(frame, collections(BLACK_TEES), MatchingConfig(min_relevance=0.3, min_page_size=2, max_page_size=3))
    assert pages.get_column("product_id").to_list() == ["p7", "p6", "p5"]  # p >= 0.6 (p² >= 0.3): 5 eligible, cut at 3
    too_small = match_pages_duckdb(frame, collections(BLACK_TEES), MatchingConfig(min_relevance=0.95, min_page_size=2, max_page_size=3))
    assert too_small.is_empty()  # one eligible product < min_page_size: no page at all


def test_duplicate_input_rows_do_not_count_twice() -> None:
    frame = products([("a", "product_type", "t-shirt", 0.9), ("a", "product_type", "t-shirt", 0.9), ("b", "color", "black", 0.9)])
    three = {"x": [("product_type", "t-shirt"), ("color", "black")]}
    assert match_pages_duckdb(frame, collections(three), MatchingConfig(min_page_size=1)).is_empty()


def test_empty_inputs_give_an_empty_typed_frame() -> None:
    empty = match_pages_duckdb(products([]), collections(BLACK_TEES), MatchingConfig())
    assert empty.is_empty() and empty.schema == pl.Schema(PAGE_SCHEMA)


def brute_force_pages(product_attributes: pl.DataFrame, collection_attributes: pl.DataFrame, config: MatchingConfig) -> pl.DataFrame:
    """The rule written the slow, obvious way in Python."""
    by_product: dict[str, dict[tuple[str, str], float]] = {}
    for pid, key, value, prob in product_attributes.iter_rows():
        by_product.setdefault(pid, {})[(key, value)] = prob
    rows = []
    for slug, group in collection_attributes.group_by("slug"):
        attrs = list(zip(group.get_column("key"), group.get_column("value")))
        hits = []
        for pid, owned in by_product.items():
            if all(a in owned for a in attrs):
                relevance = math.prod(float(owned[a]) for a in attrs)
                if relevance >= config.min_relevance:
                    hits.append((-relevance, pid))
        if len(hits) >= config.min_page_size:
            for rank, (neg, pid) in enumerate(sorted(hits)[: config.max_page_size], start=1):
                rows.append((slug[0], pid, -neg, rank))
    return pl.DataFrame(rows, schema=PAGE_SCHEMA, orient="row").sort("slug", "rank")


def test_reference_agrees_with_brute_force_on_generated_inputs() -> None:
    product_attributes, collection_attributes = synthetic_inputs(1500, 120, seed=3)
    config = MatchingConfig(min_relevance=0.4, min_page_size=3, max_page_size=15)
    pages = match_pages_duckdb(product_attributes, collection_attributes, config)
    expected = brute_force_pages(product_attributes, collection_attributes, config)
    assert pages.height > 100
    assert pages.select("slug", "product_id", "rank").equals(expected.select("slug", "product_id", "rank"))
    assert pages.get_column("relevance").to_list() == pytest.approx(expected.get_column("relevance").to_list(), abs=1e-9)


def test_the_encoders_agreement_ranks_products_the_text_names_alike() -> None:
    """Both titles name the page's attributes (probability 1); the product whose image and
    title the towers alone also read that way comes first, and one they doubt falls below
    `min_relevance`."""
    frame = products([(pid, key, value, 1.0) for pid in "abc" for key, value in BLACK_TEES["black-tees"]]).with_columns(
        pl.Series("encoder_probability", [0.5, 0.5, 1.0, 0.75, 0.25, 0.25], dtype=pl.Float32)
    )
    pages = match_pages_duckdb(frame, collections(BLACK_TEES), MatchingConfig(min_relevance=0.3, min_page_size=1))
    assert pages.select("product_id", "relevance").rows() == [("b", 0.75)]  # a: 0.25 < 0.3; c: 0.0625
    without = match_pages_duckdb(frame.drop("encoder_probability"), collections(BLACK_TEES), MatchingConfig(min_relevance=0.3, min_page_size=1))
    assert without.get_column("product_id").to_list() == ["a", "b", "c"]  # no encoder column: the text alone, ties by id
