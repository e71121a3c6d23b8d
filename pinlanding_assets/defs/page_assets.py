"""`landing_pages`: products matched to collections (on Spark, or on embedded DuckDB when
there is no Java), stored, exported, rendered.

Global like `collection_queries`: pages span shards. Each materialization is compared with
the previous one (pages added / removed / changed, in metadata and the `page_refresh_log`
table); retired slugs stay in `retired_slugs` with a redirect target, and the site writes a
redirect page for each.

Publishing is safe to start from several runs at once (a sensor refreshing three shards):
the step holds the data home's publish lock from start to end, so publishes queue instead
of interleaving their page diffs, tables, exports and site switches; when Spark reads its
inputs from shared storage (`spark_input_dir`), each run uses a folder of its own (removed
afterwards). Only images that pass the checks of
`core/site.py` are published; a product whose image fails is quarantined (stage `publish`)
and left off its pages, in the tables, the export and the site alike.

One step, four tables (a `@multi_asset`, see `defs/tables.py`): `landing_pages` (read from
`product_attribute_scores`, `collection_queries` and `catalog_products`), `published_pages`,
`retired_slugs` and `page_refresh_log`. The step reads back its previous `published_pages`
and `retired_slugs` to diff against (not drawn: no self-dependencies), and replaces the
`quarantine` rows of stage `publish` (that table belongs to `raw_attributes`).
"""


import os
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetExecutionContext, Config, MaterializeResult, MetadataValue, multi_asset
from dagster_pyspark import LazyPySparkResource

from ..core.collection_mining import collection_attribute_rows
from ..core.evaluation import catalog_label_attributes, collection_precision_at_k, comparable_values, expand_to_vocabulary
from ..core.file_lock import exclusive_lock
from ..core.matching import MATCHING_ENGINES, PAGE_SCHEMA, MatchingConfig, join_uri, match_pages_duckdb, match_pages_spark, remove_staged_inputs, spark_input_location, withhold_products
from ..core.page_refresh import CHANGE_SCHEMA, PUBLISHED_SCHEMA, RETIRED_SCHEMA, diff_pages, published_pages, update_retired
from ..core.site import SiteBuild, SiteConfig
from .automation import PUBLISH_AFTER_SHARD_UPDATES
from .config_from_core import CoreSettings, with_core_settings
from .resources import CatalogResource, DataHomeResource
from .tables import table_spec, written_table_metadata

CODE_VERSION = "1"  # bump when this step's logic (here or in core/matching.py, page_refresh.py, site.py) changes its tables or the site
GROUP = "pages"
TABLES = ("landing_pages", "published_pages", "retired_slugs", "page_refresh_log")  # the asset first: its materialization comes first
# Every table of the step waits for the same thing: one publish per batch of shard updates.
LANDING_PAGES_SPECS = [
    spec.replace_attributes(automation_condition=PUBLISH_AFTER_SHARD_UPDATES) for spec in [
    table_spec(
        "landing_pages", group=GROUP, code_version=CODE_VERSION, kinds={"spark"}, schema=PAGE_SCHEMA,
        deps=["product_attribute_scores", "collection_queries", "catalog_products"],
        description=(
            "Products matched to collections on Spark: one row per (page, product) with relevance and rank; also "
            "written as a Parquet export and rendered as the static site (`site`, switched atomically). Products "
            "whose images fail the publish checks are left off and quarantined (stage `publish`)."
        ),
    ),
    table_spec(
        "published_pages", group=GROUP, code_version=CODE_VERSION, schema=PUBLISHED_SCHEMA, deps=["landing_pages", "collection_queries"],
        description="One row per page actually published: slug, title, attributes, products in rank order; the next publish diffs against it.",
    ),
    table_spec(
        "retired_slugs", group=GROUP, code_version=CODE_VERSION, schema=RETIRED_SCHEMA, deps=["published_pages"],
        description="Slugs of pages that were removed, kept for good with a redirect target (a live slug, or the index).",
    ),
    table_spec(
        "page_refresh_log", group=GROUP, code_version=CODE_VERSION, schema=CHANGE_SCHEMA, deps=["published_pages"],
        description="One row per page added, removed or changed by each publish (refresh id, titles, products added and removed, reordering).",
    ),
    ]
]


# The settings the step hands to the core, defined there (defaults and docs).
PAGES_SETTINGS = (CoreSettings(MatchingConfig), CoreSettings(SiteConfig, rename={"keep_builds": "keep_site_builds"}))


class PagesConfig(with_core_settings(Config, *PAGES_SETTINGS)):
    min_pages: int = 1  # check
    min_precision_at_10: float = 0.8  # check, against catalog labels where there are some
    engine: str = "spark"  # "spark": the spark resource (local, cluster or Spark Connect); "duckdb": embedded, no Java; identical pages
    spark_input_dir: str | None = None  # a path or URI every executor can read (s3a://..., a shared mount): inputs go there as Parquet, in a subfolder per run; unset: <home>/spark-input for a local master, else Arrow data through the session
    publish_lock_timeout_s: float = 1800.0  # how long a publish waits for another one to finish before failing


def match_pages(
    context: AssetExecutionContext, config: PagesConfig, spark: LazyPySparkResource, product_attributes: pl.DataFrame, collection_attrs: pl.DataFrame, matching: MatchingConfig, local_inputs: Path
) -> pl.DataFrame:
    """The pages on the configured engine. DuckDB never touches the spark resource, so no JVM
    starts (and none is needed)."""
    if config.engine not in MATCHING_ENGINES:
        raise ValueError(f"landing_pages engine must be one of {', '.join(MATCHING_ENGINES)}, got {config.engine!r}")
    n_collections = collection_attrs.get_column("slug").n_unique()
    context.log.info("matching %d assigned attributes against %d collections on %s", product_attributes.height, n_collections, config.engine)
    if config.engine == "duckdb":
        return match_pages_duckdb(product_attributes, collection_attrs, matching)
    session = spark.spark_session
    location = spark_input_location(config.spark_input_dir, spark.spark_config.get("spark.master"), local_inputs)
    if location is None:
        return match_pages_spark(session, product_attributes, collection_attrs, matching)
    # A URI, never a Path: Path("s3a://bucket/in") is "s3a:/bucket/in".
    run_input = join_uri(location, context.run_id)
    try:
        return match_pages_spark(session, product_attributes, collection_attrs, matching, input_uri=run_input)
    finally:
        remove_staged_inputs(run_input)


def read_published(warehouse) -> pl.DataFrame:
    previous = warehouse.read_table("published_pages")
    return previous if not previous.is_empty() else pl.DataFrame(schema=PUBLISHED_SCHEMA)


@multi_asset(
    name="landing_pages",
    specs=LANDING_PAGES_SPECS,
    pool="spark",  # one Spark publish at a time (dagster.yaml)
    check_specs=[
        AssetCheckSpec("page_size_bounds", asset="landing_pages", description="Every page within [min_page_size, max_page_size] products."),
        AssetCheckSpec("page_count", asset="landing_pages", description="At least min_pages pages."),
        AssetCheckSpec("page_precision_at_10", asset="landing_pages", description="Collection P@10 against catalog labels ≥ min_precision_at_10."),
    ],
)
def landing_pages(
    context: AssetExecutionContext, config: PagesConfig, data_home: DataHomeResource, spark: LazyPySparkResource, catalog: CatalogResource
):
    def say_waiting() -> None:
        context.log.info("another publish holds %s; waiting for it to finish", data_home.paths.publish_lock)

    # Held from the first read to the site switch: two publishes that interleave would diff
    # against each other's half-written state and overwrite each other's files.
    with exclusive_lock(data_home.paths.publish_lock, config.publish_lock_timeout_s, on_wait=say_waiting):
        results = publish(context, config, data_home, spark, catalog.table().root)
    yield from results


def publish(context: AssetExecutionContext, config: PagesConfig, data_home: DataHomeResource, spark: LazyPySparkResource, catalog_root: Path) -> list[MaterializeResult]:
    """Match, withhold products whose images fail, store, export, render and switch the site
    (the caller holds the publish lock); the materializations of the step's tables, pages first."""
    warehouse = data_home.warehouse
    paths = data_home.paths
    product_attributes = warehouse.read("SELECT product_id, key, value, probability FROM product_attribute_scores WHERE assigned")
    collections = warehouse.read_table("collection_queries")
    collection_attrs = collection_attribute_rows(collections)
    matching = config.to_core(MatchingConfig)
    pages = match_pages(context, config, spark, product_attributes, collection_attrs, matching, data_home.paths.spark_inputs)

    products = warehouse.read_table("catalog_products")
    site_config = config.to_core(SiteConfig)
    with SiteBuild(paths.site, context.run_id, site_config) as build:  # switched in when the block ends without an error
        # Images first: a product whose image fails its checks leaves the pages everywhere.
        on_pages = pages.select("product_id").unique().join(products, on="product_id", how="left")
        images = build.stage_images(on_pages, catalog_root)
        matched_pages = pages.get_column("slug").n_unique()
        pages = withhold_products(pages, images.refused_ids, matching)
        warehouse.replace_rows("quarantine", images.refused, "stage", ["publish"])  # every publish checks afresh
        if images.refused.height:
            context.log.warning("%d products withheld from the pages, their images failed the publish checks: %s", images.refused.height, images.refused_reasons())

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
        export = paths.exports / "landing_pages.parquet"
        written = export.with_name(f".{export.name}.{context.run_id}")
        pages.write_parquet(written)
        os.replace(written, export)  # readers get the old file or the new one, never half
        site = build.render(collections, pages, products, retired, images)
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
    tables = written_table_metadata(warehouse, TABLES)
    pages_result = MaterializeResult(
        asset_key="landing_pages",
        metadata={
            **tables["landing_pages"],
            "pages": n_pages,
            "page_rows": pages.height,
            "smallest_page": smallest,
            "largest_page": largest,
            "precision_at_10": precision,
            **summary.as_metadata(),
            "retired_slugs": retired.height,
            "changes_sample": MetadataValue.json(summary.changes.head(20).select("slug", "change", "products_added", "products_removed").to_dicts()),
            "site": MetadataValue.path(str(site.index)),
            "site_url": MetadataValue.url(site.index.absolute().as_uri()),  # through the site link, not a build that will be pruned
            **site.as_metadata(),
            "site_withheld_products": images.refused.height,
            "site_withheld_reasons": MetadataValue.json(images.refused_reasons()),
            "pages_dropped_by_withholding": matched_pages - n_pages,
            "parquet": MetadataValue.path(str(export)),
            "engine": config.engine,
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
    return [pages_result] + [MaterializeResult(asset_key=table, metadata=tables[table]) for table in TABLES[1:]]
