"""Spark and the DuckDB reference produce identical pages on the same input.

One local Spark session for the whole test run (conftest's `spark`): starting a
JVM costs seconds, so every comparison here shares it.
"""

from __future__ import annotations

import polars as pl
import pytest

from pinlanding_assets.core.matching import COLLECTION_INPUT_SCHEMA, MatchingConfig, join_uri, match_pages_duckdb, match_pages_spark, remove_staged_inputs, synthetic_inputs


@pytest.mark.parametrize("config", [MatchingConfig(), MatchingConfig(min_relevance=0.35, min_page_size=3, max_page_size=8)])
def test_spark_and_duckdb_pages_are_identical(spark, config: MatchingConfig) -> None:
    product_attributes, collection_attributes = synthetic_inputs(2500, 200, seed=1)
    reference = match_pages_duckdb(product_attributes, collection_attributes, config)
    on_spark = match_pages_spark(spark, product_attributes, collection_attributes, config)
    assert reference.height > 300 and reference.get_column("slug").n_unique() > 15
    # Bit-identical: same members, same ranks, same relevance values.
    assert on_spark.equals(reference)


def test_parquet_input_path_gives_the_same_pages(spark, tmp_path) -> None:
    product_attributes, collection_attributes = synthetic_inputs(2000, 100, seed=2)
    config = MatchingConfig(min_page_size=5)
    via_parquet = match_pages_spark(spark, product_attributes, collection_attributes, config, input_uri=str(tmp_path / "spark-input"))
    assert (tmp_path / "spark-input" / "products.parquet").is_file()
    assert via_parquet.equals(match_pages_duckdb(product_attributes, collection_attributes, config))


def test_input_uri_keeps_its_scheme(spark, tmp_path) -> None:
    """Issue 13 item 4: `spark_input_dir` is a URI every executor can read. Through `Path()`
    `file:///tmp/x` became `file:/tmp/x` (and was created as a relative folder named
    `file:`); `s3a://bucket/in` became `s3a:/bucket/in`."""
    product_attributes, collection_attributes = synthetic_inputs(2000, 100, seed=2)
    config = MatchingConfig(min_page_size=5)
    run_input = join_uri((tmp_path / "shared").as_uri(), "run-1")
    assert run_input == f"file://{tmp_path}/shared/run-1"
    via_uri = match_pages_spark(spark, product_attributes, collection_attributes, config, input_uri=run_input)
    assert (tmp_path / "shared" / "run-1" / "collections.parquet").is_file()
    assert via_uri.equals(match_pages_duckdb(product_attributes, collection_attributes, config))
    remove_staged_inputs(run_input)
    assert not (tmp_path / "shared" / "run-1").exists()


def test_object_store_uris_are_joined_as_uris() -> None:
    assert join_uri("s3a://bucket/pinlanding/in/", "run-1") == "s3a://bucket/pinlanding/in/run-1"
    assert join_uri("abfss://c@acct.dfs.core.windows.net/in", "run-1", "x.parquet") == "abfss://c@acct.dfs.core.windows.net/in/run-1/x.parquet"
    assert join_uri("/mnt/shared/in", "run-1") == "/mnt/shared/in/run-1"


def test_an_input_uri_this_process_cannot_write_says_what_to_do(spark) -> None:
    product_attributes, collection_attributes = synthetic_inputs(200, 10, seed=2)
    with pytest.raises(ValueError, match="cannot write nosuchfs:// URIs.*Arrow data"):
        match_pages_spark(spark, product_attributes, collection_attributes, MatchingConfig(), input_uri="nosuchfs://bucket/in")


def test_empty_collections_give_no_pages_on_spark(spark) -> None:
    product_attributes, collection_attributes = synthetic_inputs(100, 5, seed=4)
    assert match_pages_spark(spark, product_attributes, collection_attributes.head(0), MatchingConfig()).is_empty()


def test_spark_inputs_go_where_the_engine_reads_them_fastest(tmp_path) -> None:
    from pinlanding_assets.core.matching import spark_input_location

    assert spark_input_location("s3a://bucket/in", "local[*]", tmp_path) == "s3a://bucket/in"  # configured shared storage wins
    assert spark_input_location(None, "local[2]", tmp_path) == str(tmp_path)  # local: Parquet on this disk (3x faster than Arrow)
    assert spark_input_location(None, "spark://host:7077", tmp_path) is None  # a cluster without shared storage: Arrow
    assert spark_input_location(None, None, tmp_path) is None  # Spark Connect: no master here


def test_spark_and_duckdb_agree_with_the_encoders_probability(spark) -> None:
    product_attributes, collection_attributes = synthetic_inputs(2500, 200, seed=3)
    weights = pl.Series("encoder_probability", [((i * 7919) % 1000) / 1000 for i in range(product_attributes.height)], dtype=pl.Float32)
    product_attributes = product_attributes.with_columns(weights)
    config = MatchingConfig(min_relevance=0.1, min_page_size=3)
    reference = match_pages_duckdb(product_attributes, collection_attributes, config)
    assert reference.height > 100
    assert match_pages_spark(spark, product_attributes, collection_attributes, config).equals(reference)


def test_spark_and_duckdb_agree_on_the_edge_cases_of_the_pair_plan(spark) -> None:
    """Spark finds a collection through its two rarest attributes (or the one of a
    one-attribute collection), looks the others up, and counts only the top of a page:
    collections of one attribute, with an attribute no product has, whose rows disagree
    with n_attributes, duplicate input rows, ties in relevance, and a page cut shorter than
    its minimum all come out as in the reference."""
    product_attributes, collection_attributes = synthetic_inputs(3000, 150, seed=5)
    # Quantized probabilities: many equal relevances, ordered by product id.
    product_attributes = product_attributes.with_columns((pl.col("probability") * 4).round() / 4).filter(pl.col("probability") > 0)
    extra = pl.DataFrame(
        [
            ("single-color", "color", "col0", 1), ("single-type", "product_type", "pro3", 1),
            ("unknown-value", "product_type", "pro0", 2), ("unknown-value", "color", "no-such-colour", 2),
            ("short-rows", "product_type", "pro0", 3), ("short-rows", "color", "col0", 3),
        ],
        schema=collection_attributes.schema,
        orient="row",
    )
    collection_attributes = pl.concat([collection_attributes, extra])
    product_attributes = pl.concat([product_attributes, product_attributes.head(500)])  # duplicates
    for config in (MatchingConfig(min_relevance=0.2, min_page_size=3, max_page_size=25), MatchingConfig(min_relevance=0.2, min_page_size=30, max_page_size=12)):
        reference = match_pages_duckdb(product_attributes, collection_attributes, config)
        slugs = set(reference.get_column("slug"))
        assert {"single-color", "single-type"} <= slugs and not {"unknown-value", "short-rows"} & slugs
        assert reference.group_by("slug", "relevance").len().get_column("len").max() > 1  # real ties
        assert match_pages_spark(spark, product_attributes, collection_attributes, config).equals(reference)


@pytest.mark.parametrize("staged", [False, True])
def test_collections_of_one_attribute_only_match_on_spark_as_in_the_reference(spark, tmp_path, staged: bool) -> None:
    """A style concept's combinations are often single product types: with no collection of
    two attributes the collections' input had no a2 column, which the pair join reads
    (Spark refused the query: `c.a2` cannot be resolved; the label-free VLM run failed)."""
    product_attributes, _ = synthetic_inputs(2000, 10, seed=3)
    singles = pl.DataFrame(
        [("type-a", "product_type", "pro0", 1), ("type-b", "product_type", "pro1", 1), ("colour-a", "color", "col2", 1)],
        schema=COLLECTION_INPUT_SCHEMA, orient="row",
    )
    config = MatchingConfig(min_page_size=3)
    reference = match_pages_duckdb(product_attributes, singles, config)
    assert reference.get_column("slug").n_unique() == 3
    on_spark = match_pages_spark(spark, product_attributes, singles, config, input_uri=str(tmp_path / "in") if staged else None)
    assert on_spark.equals(reference)


def test_spark_plan_broadcasts_the_collections_and_shuffles_only_the_top_of_each_page(spark) -> None:
    from pinlanding_assets.core.matching import encode_inputs, spark_pages_query

    product_attributes, collection_attributes = synthetic_inputs(2000, 100, seed=2)
    query = spark_pages_query(spark, encode_inputs(product_attributes, collection_attributes), MatchingConfig())
    plan = query._jdf.queryExecution().executedPlan().toString()  # before adaptive execution: the planned joins
    assert "BroadcastHashJoin" in plan and "SortMergeJoin" not in plan and "BatchEvalPython" not in plan
    assert plan.count("WindowGroupLimit") == 2  # the partial limit before the shuffle, the final after
    assert plan.count("Exchange hashpartitioning") == 1  # the one shuffle: by collection, for the ranking
