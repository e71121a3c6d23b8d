"""Matching products to collections: the landing pages.

A product joins a collection's page when it carries every attribute of the collection;
its relevance is the mean calibrated probability of those attributes. Products below
`min_relevance` are left out, pages are ranked by relevance (ties by product id), cut at
`max_page_size`, and pages below `min_page_size` are dropped.

Two implementations of the same rule: `match_pages_spark` (the production path; runs on
any Spark session, `local[*]` or a cluster) and `match_pages_duckdb` (the reference, also
used to cross-check Spark in tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

from .warehouse import query_polars

PAGE_SCHEMA = {"slug": pl.String, "product_id": pl.String, "relevance": pl.Float64, "rank": pl.Int64}


@dataclass(frozen=True)
class MatchingConfig:
    min_relevance: float = 0.5
    min_page_size: int = 10
    max_page_size: int = 60


MATCH_SQL = """
WITH hits AS (
    SELECT c.slug, a.product_id, count(*) AS matched, avg(a.probability) AS relevance, any_value(c.n_attributes) AS n_attributes
    FROM collection_attributes c
    JOIN product_attributes a ON a.key = c.key AND a.value = c.value
    GROUP BY c.slug, a.product_id
), eligible AS (
    SELECT slug, product_id, relevance FROM hits
    WHERE matched = n_attributes AND relevance >= {min_relevance}
), ranked AS (
    SELECT slug, product_id, relevance,
           row_number() OVER (PARTITION BY slug ORDER BY relevance DESC, product_id ASC) AS rank,
           count(*) OVER (PARTITION BY slug) AS eligible_count
    FROM eligible
)
SELECT slug, product_id, relevance, rank FROM ranked
WHERE rank <= {max_page_size} AND eligible_count >= {min_page_size}
"""


def _sql(config: MatchingConfig) -> str:
    return MATCH_SQL.format(
        min_relevance=float(config.min_relevance),
        max_page_size=int(config.max_page_size),
        min_page_size=int(config.min_page_size),
    )


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.cast(PAGE_SCHEMA).sort("slug", "rank")  # type: ignore[arg-type]


def match_pages_duckdb(product_attributes: pl.DataFrame, collection_attributes: pl.DataFrame, config: MatchingConfig) -> pl.DataFrame:
    """product_attributes: product_id, key, value, probability (assigned only);
    collection_attributes: slug, key, value, n_attributes."""
    con = duckdb.connect()
    try:
        con.register("product_attributes", product_attributes.to_arrow())
        con.register("collection_attributes", collection_attributes.to_arrow())
        return _sorted(query_polars(con, _sql(config)))
    finally:
        con.close()


def match_pages_spark(spark, product_attributes: pl.DataFrame, collection_attributes: pl.DataFrame, config: MatchingConfig, input_dir: str | None = None) -> pl.DataFrame:
    """The same rule on Spark. With `input_dir` (a path the executors can read) the inputs
    travel as Parquet files, which is how a cluster gets them; without, as in-memory frames."""
    if input_dir:
        products_path = f"{input_dir}/product_attributes.parquet"
        collections_path = f"{input_dir}/collection_attributes.parquet"
        product_attributes.write_parquet(products_path)
        collection_attributes.write_parquet(collections_path)
        products_df = spark.read.parquet(products_path)
        collections_df = spark.read.parquet(collections_path)
    else:
        products_df = spark.createDataFrame(product_attributes.to_pandas())
        collections_df = spark.createDataFrame(collection_attributes.to_pandas())
    products_df.createOrReplaceTempView("product_attributes")
    collections_df.createOrReplaceTempView("collection_attributes")
    sql = _sql(config).replace("any_value(", "first(")
    result = spark.sql(sql).toArrow()
    return _sorted(pl.from_arrow(result))  # type: ignore[arg-type]
