"""`landing_pages`: products matched to collections on Spark, stored, exported, rendered.

Global like `collection_queries`: pages span shards. Each materialization is compared with
the previous one (pages added / removed / changed, in metadata and the `page_refresh_log`
table); retired slugs stay in `retired_slugs` with a redirect target, and the site writes a
redirect page for each.
"""


from datetime import datetime, timezone
from pathlib import Path

import polars as pl
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from dagster_pyspark import LazyPySparkResource

from ..core.collections import collection_attribute_rows
from ..core.evaluation import catalog_label_attributes, collection_precision_at_k, comparable_values, expand_to_vocabulary
from ..core.matching import MatchingConfig, match_pages_spark
from ..core.page_refresh import PUBLISHED_SCHEMA, diff_pages, published_pages, update_retired
from ..core.site import SiteConfig, render_site
from .collection_assets import collection_queries
from .resources import DataHomeResource


class PagesConfig(Config):
    min_relevance: float = 0.5
    min_page_size: int = 10
    max_page_size: int = 60
    min_pages: int = 1  # check
    min_precision_at_10: float = 0.8  # check, against catalog labels where there are some
    base_url: str = "https://example.com/pinlanding"
    spark_input_dir: str | None = None  # where Spark reads its inputs (shared storage on a cluster); default <home>/spark-input


def read_published(warehouse) -> pl.DataFrame:
    previous = warehouse.read_table("published_pages")
    return previous if not previous.is_empty() else pl.DataFrame(schema=PUBLISHED_SCHEMA)


@asset(
    deps=[collection_queries],
    group_name="pages",
    check_specs=[
        AssetCheckSpec("page_size_bounds", asset="landing_pages", description="Every page within [min_page_size, max_page_size] products."),
        AssetCheckSpec("page_count", asset="landing_pages", description="At least min_pages pages."),
        AssetCheckSpec("page_precision_at_10", asset="landing_pages", description="Collection P@10 against catalog labels ≥ min_precision_at_10."),
    ],
)
def landing_pages(context: AssetExecutionContext, config: PagesConfig, data_home: DataHomeResource, spark: LazyPySparkResource) -> MaterializeResult:
    warehouse = data_home.warehouse
    paths = data_home.paths
    product_attributes = warehouse.read("SELECT product_id, key, value, probability FROM product_attribute_scores WHERE assigned")
    collections = warehouse.read_table("collection_queries")
    collection_attrs = collection_attribute_rows(collections)
    matching = MatchingConfig(config.min_relevance, config.min_page_size, config.max_page_size)
    context.log.info("matching %d assigned attributes against %d collections on Spark", product_attributes.height, collection_attrs.get_column("slug").n_unique())
    session = spark.spark_session
    session.sparkContext.setLogLevel("WARN")
    spark_input = Path(config.spark_input_dir) if config.spark_input_dir else paths.root / "spark-input"
    pages = match_pages_spark(session, product_attributes, collection_attrs, matching, input_dir=spark_input)

    # Refresh semantics: compare with the previous publication before replacing it.
    refreshed_at = datetime.now(timezone.utc)
    previous = read_published(warehouse)
    current = published_pages(collections, pages)
    summary = diff_pages(previous, current, context.run_id, refreshed_at)
    retired = update_retired(warehouse.read_table("retired_slugs"), summary, previous, current, context.run_id, refreshed_at)
    if summary.changes.height:
        warehouse.upsert("page_refresh_log", summary.changes, ["refresh_id", "slug"])
    warehouse.replace_table("retired_slugs", retired)
    warehouse.replace_table("landing_pages", pages)
    warehouse.replace_table("published_pages", current)
    pages.write_parquet(paths.exports / "landing_pages.parquet")

    products = warehouse.read_table("catalog_products")
    site = render_site(paths.site, collections, pages, products, SiteConfig(config.base_url), retired)
    sizes = pages.group_by("slug").len()
    n_pages = sizes.height
    smallest = int(sizes.get_column("len").min() or 0) if n_pages else 0
    largest = int(sizes.get_column("len").max() or 0) if n_pages else 0
    labels = catalog_label_attributes(products)
    page_values = collection_attrs.select("key", "value").unique()
    truth = expand_to_vocabulary(labels, page_values, "lenient")
    # Only page attributes the labels can name are checked (a "Deo" page is not wrong for
    # the catalog calling them "Deodorant").
    precision = collection_precision_at_k(pages, collection_attrs, truth, labeled_keys=set(labels.get_column("key").unique().to_list()), comparable=comparable_values(labels, page_values))
    measured = precision == precision
    context.log.info(
        "%d landing pages (%d added, %d removed, %d changed); site at %s", n_pages, summary.added, summary.removed, summary.changed, site.index
    )
    return MaterializeResult(
        metadata={
            "pages": n_pages,
            "page_rows": pages.height,
            "smallest_page": smallest,
            "largest_page": largest,
            "precision_at_10": precision,
            **summary.as_metadata(),
            "retired_slugs": retired.height,
            "changes_sample": MetadataValue.json(summary.changes.head(20).select("slug", "change", "products_added", "products_removed").to_dicts()),
            "site": MetadataValue.path(str(site.index)),
            "site_url": MetadataValue.url(site.index.resolve().as_uri()),
            **site.as_metadata(),
            "parquet": MetadataValue.path(str(paths.exports / "landing_pages.parquet")),
            "engine": "spark",
        },
        check_results=[
            AssetCheckResult(
                check_name="page_size_bounds",
                passed=n_pages == 0 or (smallest >= config.min_page_size and largest <= config.max_page_size),
                severity=AssetCheckSeverity.ERROR,
                metadata={"smallest": smallest, "largest": largest, "min": config.min_page_size, "max": config.max_page_size},
            ),
            AssetCheckResult(
                check_name="page_count",
                passed=n_pages >= config.min_pages,
                severity=AssetCheckSeverity.ERROR,
                metadata={"value": n_pages, "threshold": config.min_pages},
            ),
            AssetCheckResult(
                check_name="page_precision_at_10",
                # Without catalog labels there is nothing to measure: a label-free catalog does not
                # fail for lacking labels, and the description says the figure was not measured.
                passed=bool(not measured or precision >= config.min_precision_at_10),
                severity=AssetCheckSeverity.WARN,
                description=(
                    f"P@10 {precision:.3f} against catalog labels (lenient mapping; attributes the labels can name)" if measured
                    else "not measured: no page has a product with catalog labels for its attributes (a label-free catalog)"
                ),
                metadata={"value": precision if measured else None, "threshold": config.min_precision_at_10, "truth": "catalog labels (lenient)" if measured else "none"},
            ),
        ],
    )
