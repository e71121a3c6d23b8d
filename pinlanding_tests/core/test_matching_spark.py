"""Spark and the DuckDB reference produce identical pages on the same input.

One local Spark session for the whole test run (conftest's `spark`): starting a
JVM costs seconds, so every comparison here shares it.
"""

from __future__ import annotations

import polars as pl
import pytest

from pinlanding_assets.core.matching import MatchingConfig, match_pages_duckdb, match_pages_spark, synthetic_inputs


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
    via_parquet = match_pages_spark(spark, product_attributes, collection_attributes, config, input_dir=tmp_path / "spark-input")
    assert (tmp_path / "spark-input" / "product_attributes.parquet").is_file()
    assert via_parquet.equals(match_pages_duckdb(product_attributes, collection_attributes, config))


def test_empty_collections_give_no_pages_on_spark(spark) -> None:
    product_attributes, collection_attributes = synthetic_inputs(100, 5, seed=4)
    assert match_pages_spark(spark, product_attributes, collection_attributes.head(0), MatchingConfig()).is_empty()
