"""`landing_pages`: products matched to collections (on Spark, or on embedded DuckDB when
there is no Java), stored, exported, rendered.

Global like `collection_queries`: pages span shards. Each materialization is compared with
the previous one (pages added / removed / changed, in metadata and the `page_refresh_log`
table); retired slugs stay in `retired_slugs` with a redirect target, and the site writes a
redirect page for each.

The publish sequence (`core/publishing.py`) is safe to start from several runs at once: it
holds the data home's publish lock from start to end, so publishes queue; only images that
pass the checks of `core/site.py` are published, a product whose image fails is quarantined
(stage `publish`) and left off its pages.

One step, four tables (a `@multi_asset`, see `defs/tables.py`): `landing_pages` (read from
`product_attribute_scores`, `collection_queries`, `concept_decompositions` (one page per
style concept, with its decomposition shown) and `catalog_products`), `published_pages`,
`retired_slugs` and `page_refresh_log`. The step reads back its previous `published_pages`
and `retired_slugs` to diff against (not drawn: no self-dependencies), and replaces the
`quarantine` rows of stage `publish` (that table belongs to `raw_attributes`).
"""


from dagster import AssetCheckSpec, AssetExecutionContext, Config, MaterializeResult, MetadataValue, multi_asset
from dagster_pyspark import LazyPySparkResource

from ..core.checks import PageCheckConfig
from ..core.matching import PAGE_SCHEMA, MatchingConfig
from ..core.page_dedup import DedupConfig
from ..core.page_quality import IndexingConfig
from ..core.page_refresh import CHANGE_SCHEMA, PUBLISHED_SCHEMA, RETIRED_SCHEMA
from ..core.publishing import PageSettings, PublishConfig, SparkSource, publish
from ..core.site import SiteConfig
from .automation import PUBLISH_AFTER_SHARD_UPDATES
from .checks import check_results
from .config_from_core import CoreSettings, with_core_settings
from .resources import CatalogResource, DataHomeResource
from .tables import table_spec, written_table_metadata

CODE_VERSION = "6"  # bump when this step's logic (here or in core/publishing.py, matching.py, style_concepts.py, page_dedup.py, page_quality.py, related_pages.py, page_refresh.py, site.py) changes its tables or the site
GROUP = "pages"
TABLES = ("landing_pages", "published_pages", "retired_slugs", "page_refresh_log")  # the asset first: its materialization comes first
# Every table of the step waits for the same thing: one publish per batch of shard updates.
LANDING_PAGES_SPECS = [
    spec.replace_attributes(automation_condition=PUBLISH_AFTER_SHARD_UPDATES) for spec in [
    table_spec(
        "landing_pages", group=GROUP, code_version=CODE_VERSION, kinds={"spark"}, schema=PAGE_SCHEMA,
        deps=["product_attribute_scores", "collection_queries", "concept_decompositions", "catalog_products"],
        description=(
            "Products matched to collections on Spark, and to the style concepts' combinations (one page per concept, "
            "its products matching any of them): one row per (page, product) with relevance and rank; also "
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
PAGES_SETTINGS = (
    CoreSettings(MatchingConfig),
    CoreSettings(SiteConfig, rename={"keep_builds": "keep_site_builds"}),
    CoreSettings(PublishConfig),
    CoreSettings(PageCheckConfig),
    CoreSettings(DedupConfig),
    CoreSettings(IndexingConfig),
)


class PagesConfig(with_core_settings(Config, *PAGES_SETTINGS)):
    """How pages are matched, published and checked, and what the site is."""


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
    """Match, withhold products whose images fail, store, export, render and switch the
    site, holding the data home's publish lock throughout (`core/publishing.py`)."""
    warehouse = data_home.warehouse
    matching = config.to_core(MatchingConfig)
    spark_source = SparkSource(lambda: spark.spark_session, spark.spark_config.get("spark.master"))
    settings = PageSettings(matching, config.to_core(SiteConfig), config.to_core(PublishConfig), config.to_core(DedupConfig), config.to_core(IndexingConfig))
    published = publish(warehouse, data_home.paths, catalog.table().root, context.run_id, settings, spark_source, log=context.log)
    pages, images, site = published.pages, published.images, published.site
    smallest, largest = published.smallest_and_largest()
    tables = written_table_metadata(warehouse, TABLES)
    yield MaterializeResult(
        asset_key="landing_pages",
        metadata={
            **tables["landing_pages"],
            "pages": published.n_pages,
            "page_rows": pages.height,
            "smallest_page": smallest,
            "largest_page": largest,
            "precision_at_10": published.precision_at_10,
            "concept_pages": published.concept_pages.get_column("slug").n_unique(),
            "concept_precision_at_10": published.concept_precision_at_10,
            **published.refresh.as_metadata(),
            "retired_slugs": published.retired.height,
            "changes_sample": MetadataValue.json(published.refresh.changes.head(20).select("slug", "change", "products_added", "products_removed").to_dicts()),
            "site": MetadataValue.path(str(site.index)),
            "site_url": MetadataValue.url(site.index.absolute().as_uri()),  # through the site link, not a build that will be pruned
            **site.as_metadata(),
            "site_withheld_products": images.refused.height,
            "site_withheld_reasons": MetadataValue.json(images.refused_reasons()),
            "pages_dropped_by_withholding": published.matched_pages - published.n_pages,
            "pages_merged": published.dedup.merges.height,
            "merges_sample": MetadataValue.json(published.dedup.merges.head(20).to_dicts()),
            **{k: MetadataValue.json(v) for k, v in published.report.as_metadata().items()},
            "parquet": MetadataValue.path(str(published.export)),
            "engine": config.engine,
        },
        check_results=check_results(published.checks(matching, config.to_core(PageCheckConfig))),
    )
    for table in TABLES[1:]:
        yield MaterializeResult(asset_key=table, metadata=tables[table])
