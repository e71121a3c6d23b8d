"""Publishing the pages: the `landing_pages` step, from the assigned attributes to the live site.

One publish at a time per data home: `publish` holds the data home's publish lock from its
first read to the site switch, so publishes started together (a sensor refreshing three
shards) queue instead of diffing against each other's half-written state and overwriting
each other's files. In order:

1. match the assigned attributes against the collections (`matching.py`: on Spark, or on
   embedded DuckDB when there is no Java; the same pages), and merge pages whose products
   nearly coincide (`page_dedup.py`: the merged slug redirects to the page kept); the
   style concepts' combinations (`concept_decompositions`) are matched on the same engine
   and merged into one page per concept (`style_concepts.py`), never merged away as a
   near-duplicate: a concept page is asked for by name;
2. verify and copy the images of the products on the pages into a new site build
   (`site.SiteBuild`): a product whose image fails is quarantined (stage `publish`) and
   withheld from its pages, in the tables, the export and the site alike;
3. compare with the previous publication and update the retired slugs (`page_refresh.py`);
4. store `page_refresh_log`, `retired_slugs`, `landing_pages` and `published_pages`, and
   export the pages as Parquet (replaced whole: a reader gets the old file or the new one);
5. render the site (thin pages noindex and out of the sitemap, `page_quality.py`; related
   links, `related_pages.py`) and switch it in; if anything failed before, the live site
   stays as it was; then the page-quality report.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from .checks import CheckOutcome, PageCheckConfig, page_checks
from .collection_mining import collection_attribute_rows
from .evaluation import concept_precision_against_catalog_labels, precision_against_catalog_labels
from .file_lock import exclusive_lock
from .matching import MATCHING_ENGINES, PAGE_SCHEMA, MatchingConfig, join_uri, match_pages_duckdb, match_pages_spark, remove_staged_inputs, spark_input_location, withhold_products
from .page_dedup import Dedup, DedupConfig, dedup_pages
from .page_quality import IndexingConfig, QualityReport, indexing, quality_report
from .page_refresh import PUBLISHED_SCHEMA, RefreshSummary, diff_pages, published_pages, update_retired
from .settings import DataHome
from .site import SiteBuild, SiteConfig, SiteResult, StagedImages
from .style_concepts import CONCEPT_PAGE_SCHEMA, CONCEPT_SCHEMA, combination_attribute_rows, combination_matching, concept_page_rows, concept_pages, concept_views
from .warehouse import Warehouse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishConfig:
    """Where the pages are matched, and how long a publish waits for another."""

    engine: str = "spark"  # "spark": the spark resource (local, cluster or Spark Connect); "duckdb": embedded, no Java; identical pages
    spark_input_dir: str | None = None  # a path or URI every executor can read (s3a://..., a shared mount): inputs go there as Parquet, in a subfolder per run; unset: <home>/spark-input for a local master, else Arrow data through the session
    publish_lock_timeout_s: float = 1800.0  # how long a publish waits for another one to finish before failing


@dataclass(frozen=True)
class SparkSource:
    """The Spark session of the spark engine, created only when asked for (a JVM or a
    connection), and the master it runs on (None for Spark Connect)."""

    session: Callable[[], object]
    master: str | None


@dataclass(frozen=True)
class Publication:
    pages: pl.DataFrame  # PAGE_SCHEMA, as published (without withheld products)
    matched_pages: int  # pages after merging near-duplicates, before products were withheld
    dedup: Dedup  # the near-duplicate merges of the matched pages
    index: pl.DataFrame  # page_quality.INDEXING_SCHEMA: which pages are indexed
    report: QualityReport
    images: StagedImages
    refresh: RefreshSummary
    retired: pl.DataFrame  # RETIRED_SCHEMA
    site: SiteResult
    export: Path
    precision_at_10: float  # against catalog labels; NaN where none can judge the pages
    concept_pages: pl.DataFrame  # CONCEPT_PAGE_SCHEMA: as published, with the combination each product matched
    concept_precision_at_10: float  # concept pages, each product judged on its own combination

    @property
    def page_sizes(self) -> pl.DataFrame:
        return self.pages.group_by("slug").len()

    @property
    def n_pages(self) -> int:
        return self.page_sizes.height

    def smallest_and_largest(self) -> tuple[int, int]:
        """Products on the smallest and the largest page (0, 0 without pages)."""
        sizes = self.page_sizes.get_column("len")
        return (int(sizes.min() or 0), int(sizes.max() or 0)) if sizes.len() else (0, 0)

    def checks(self, matching: MatchingConfig, config: PageCheckConfig) -> list[CheckOutcome]:
        smallest, largest = self.smallest_and_largest()
        return page_checks(self.n_pages, smallest, largest, self.precision_at_10, matching.min_page_size, matching.max_page_size, config)


@dataclass(frozen=True)
class PageSettings:
    """Everything a publish is told: how products match pages, how near-duplicates merge,
    which pages search engines may index, the site, and where matching runs."""

    matching: MatchingConfig = MatchingConfig()
    site: SiteConfig = SiteConfig()
    publish: PublishConfig = PublishConfig()
    dedup: DedupConfig = DedupConfig()
    indexing: IndexingConfig = IndexingConfig()


def publish(
    warehouse: Warehouse,
    paths: DataHome,
    catalog_root: Path,
    run_id: str,
    settings: PageSettings,
    spark: SparkSource | None = None,
    log: logging.Logger = log,
) -> Publication:
    """Publish the pages of the stored scores and collections (see the module docstring);
    `run_id` names this publish (refresh id, site build, staged inputs)."""

    def say_waiting() -> None:
        log.info("another publish holds %s; waiting for it to finish", paths.publish_lock)

    with exclusive_lock(paths.publish_lock, settings.publish.publish_lock_timeout_s, on_wait=say_waiting):
        return _publish(warehouse, paths, catalog_root, run_id, settings, spark, log)


def assigned_attributes(warehouse: Warehouse) -> pl.DataFrame:
    """What matching reads: the assigned attributes of every shard, with the encoder's
    probability where the stored scores have one (scores written before it existed rank by
    the calibrated probability alone until their shard is scored again)."""
    columns = ["product_id", "key", "value", "probability"] + (["encoder_probability"] if "encoder_probability" in warehouse.columns("product_attribute_scores") else [])
    return warehouse.read(f"SELECT {', '.join(columns)} FROM product_attribute_scores WHERE assigned")


def _publish(warehouse: Warehouse, paths: DataHome, catalog_root: Path, run_id: str, settings: PageSettings, spark: SparkSource | None, log: logging.Logger) -> Publication:
    matching, site_config, config, dedup_config, index_config = settings.matching, settings.site, settings.publish, settings.dedup, settings.indexing
    product_attributes = assigned_attributes(warehouse)
    collections = warehouse.read_table("collection_queries")
    collection_attrs = collection_attribute_rows(collections)
    matched = match_pages(product_attributes, collection_attrs, matching, config, spark, paths.spark_inputs, run_id, log)
    dedup = dedup_pages(matched, collections, dedup_config)
    pages = dedup.pages
    if dedup.merges.height:
        log.info("%d near-duplicate pages merged (product Jaccard >= %s)", dedup.merges.height, dedup_config.max_jaccard)

    concepts = read_concepts(warehouse)
    concept_matches = match_concepts(product_attributes, concepts, matching, config, spark, paths.spark_inputs, run_id, log)
    pages = pl.concat([pages, concept_matches.select(list(PAGE_SCHEMA))])
    page_rows = pl.concat([collections.select("slug", "title", "attributes"), concept_page_rows(concepts)]) if collections.height else concept_page_rows(concepts)

    products = warehouse.read_table("catalog_products")
    with SiteBuild(paths.site, run_id, site_config) as build:  # switched in when the block ends without an error
        # Images first: a product whose image fails its checks leaves the pages everywhere.
        on_pages = pages.select("product_id").unique().join(products, on="product_id", how="left")
        images = build.stage_images(on_pages, catalog_root)
        matched_pages = pages.get_column("slug").n_unique()
        pages = withhold_products(pages, images.refused_ids, matching)
        warehouse.replace_rows("quarantine", images.refused, "stage", ["publish"])  # every publish checks afresh
        if images.refused.height:
            log.warning("%d products withheld from the pages, their images failed the publish checks: %s", images.refused.height, images.refused_reasons())

        # Refresh semantics: compare with the previous publication before replacing it.
        refreshed_at = datetime.now(timezone.utc)
        previous = read_published(warehouse)
        current = published_pages(page_rows, pages)
        refresh = diff_pages(previous, current, run_id, refreshed_at)
        retired = update_retired(warehouse.read_table("retired_slugs"), refresh, previous, current, run_id, refreshed_at, dedup.merged_into)
        if refresh.changes.height:
            warehouse.upsert("page_refresh_log", refresh.changes, ["refresh_id", "slug"])
        warehouse.replace_table("retired_slugs", retired)
        warehouse.replace_table("landing_pages", pages)
        warehouse.replace_table("published_pages", current)
        export = export_pages(pages, paths.exports, run_id)
        index = indexing(pages, index_config)
        noindex = set(index.filter(~pl.col("indexed")).get_column("slug").to_list())
        published_concepts = pages.join(concept_matches.select("slug", "product_id", "combination_slug"), on=["slug", "product_id"]).select(list(CONCEPT_PAGE_SCHEMA))
        views = concept_views(concepts, published_concepts)
        site = build.render(page_rows, pages, products, redirects(retired, dedup, current), images, noindex=noindex, concepts=views)
    n_matched = dedup.pages.get_column("slug").n_unique() + dedup.merges.height + concept_matches.get_column("slug").n_unique()
    report = quality_report(n_matched, dedup.merges, pages, index, page_rows, collection_attrs, products, index_config)
    publication = Publication(
        pages, matched_pages, dedup, index, report, images, refresh, retired, site, export, precision_against_catalog_labels(pages, collection_attrs, products),
        published_concepts, concept_precision_against_catalog_labels(published_concepts, combination_attribute_rows(concepts), products),
    )
    log.info(
        "%d landing pages (%d added, %d removed, %d changed); site at %s", publication.n_pages, refresh.added, refresh.removed, refresh.changed, site.index
    )
    return publication


def match_pages(
    product_attributes: pl.DataFrame, collection_attrs: pl.DataFrame, matching: MatchingConfig, config: PublishConfig, spark: SparkSource | None, local_inputs: Path, run_id: str, log: logging.Logger = log
) -> pl.DataFrame:
    """The pages on the configured engine. DuckDB never asks for the Spark session, so no JVM
    starts (and none is needed)."""
    if config.engine not in MATCHING_ENGINES:
        raise ValueError(f"landing_pages engine must be one of {', '.join(MATCHING_ENGINES)}, got {config.engine!r}")
    n_collections = collection_attrs.get_column("slug").n_unique()
    log.info("matching %d assigned attributes against %d collections on %s", product_attributes.height, n_collections, config.engine)
    if config.engine == "duckdb":
        return match_pages_duckdb(product_attributes, collection_attrs, matching)
    if spark is None:
        raise ValueError("engine 'spark' needs a Spark session")
    session = spark.session()
    location = spark_input_location(config.spark_input_dir, spark.master, local_inputs)
    if location is None:
        return match_pages_spark(session, product_attributes, collection_attrs, matching)
    # A URI, never a Path: Path("s3a://bucket/in") is "s3a:/bucket/in".
    run_input = join_uri(location, run_id)
    try:
        return match_pages_spark(session, product_attributes, collection_attrs, matching, input_uri=run_input)
    finally:
        remove_staged_inputs(run_input)


def read_concepts(warehouse: Warehouse) -> pl.DataFrame:
    """The stored concept decompositions (none before the step first ran)."""
    concepts = warehouse.read_table("concept_decompositions")
    return concepts if not concepts.is_empty() else pl.DataFrame(schema=CONCEPT_SCHEMA)


def match_concepts(
    product_attributes: pl.DataFrame, concepts: pl.DataFrame, matching: MatchingConfig, config: PublishConfig, spark: SparkSource | None, local_inputs: Path, run_id: str, log: logging.Logger = log
) -> pl.DataFrame:
    """CONCEPT_PAGE_SCHEMA: the concepts' combinations matched on the configured engine (no
    size bar per combination) and merged into one page per concept."""
    rows = combination_attribute_rows(concepts)
    if rows.is_empty():
        return pl.DataFrame(schema=CONCEPT_PAGE_SCHEMA)
    combination_pages = match_pages(product_attributes, rows, combination_matching(matching), config, spark, local_inputs, f"{run_id}-concepts", log)
    return concept_pages(combination_pages, concepts, matching)


def redirects(retired: pl.DataFrame, dedup: Dedup, current: pl.DataFrame) -> pl.DataFrame:
    """Every slug the site redirects: the retired ones, and the pages merged into a
    near-duplicate this publish that were never published (those that were are retired
    already, pointing at the same page)."""
    merged = dedup.merges.filter(~pl.col("slug").is_in(retired.get_column("slug").implode()) & ~pl.col("slug").is_in(current.get_column("slug").implode()))
    if merged.is_empty():
        return retired
    extra = merged.select("slug", "title", pl.col("merged_into").alias("redirect_to"))
    return pl.concat([retired.select("slug", "title", "redirect_to"), extra]).cast({"slug": pl.String, "title": pl.String, "redirect_to": pl.String})


def read_published(warehouse: Warehouse) -> pl.DataFrame:
    """The previous publication (empty before the first)."""
    previous = warehouse.read_table("published_pages")
    return previous if not previous.is_empty() else pl.DataFrame(schema=PUBLISHED_SCHEMA)


def export_pages(pages: pl.DataFrame, exports: Path, run_id: str) -> Path:
    """`exports/landing_pages.parquet`, replaced whole: readers get the old file or the new one, never half."""
    export = exports / "landing_pages.parquet"
    written = export.with_name(f".{export.name}.{run_id}")
    pages.write_parquet(written)
    os.replace(written, export)
    return export
