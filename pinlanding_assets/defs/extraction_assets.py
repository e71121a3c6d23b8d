"""`raw_attributes`: validate one catalog shard and label its sample with the teacher.

One step, four tables of the shard (a `@multi_asset`, see `defs/tables.py` for why):
`raw_attributes`, `catalog_products`, `quarantine` and `shard_ingests`; later steps depend
on the table they read.
"""


from collections.abc import Callable

import polars as pl
from dagster import AssetCheckResult, AssetCheckSeverity, AssetExecutionContext, Config, MaterializeResult, MetadataValue, multi_asset

from ..core.catalog import QUARANTINE_SCHEMA, load_catalog, shard_fingerprints
from ..core.evaluation import teacher_agreement
from ..core.extraction import (
    IN_SAMPLE,
    PIXEL_COLOR,
    PIXEL_WEIGHT,
    RAW_ATTRIBUTE_TABLE_SCHEMA,
    STORED_PRODUCT_SCHEMA,
    AttributeExtractor,
    OfflineExtractor,
    SampleSpec,
    select_sample,
)
from ..core.ingest_state import INGESTS_SCHEMA, INGESTS_TABLE, record_ingest
from ..core.llm_client import LLMProgress
from ..core.type_discovery import DiscoveryConfig
from ..core.vlm_extraction import VLMExtractionConfig, VLMExtractor, describe_domain
from ..core.warehouse import Warehouse
from .config_from_core import CoreSettings, with_core_settings
from .llm_resources import LLMResource
from .partitions import shard_check, shard_partitions
from .resources import CatalogResource, DataHomeResource
from .tables import table_spec, written_table_metadata

CODE_VERSION = "1"  # bump when this step's logic (here or in core/catalog.py, extraction.py, vlm_extraction.py) changes its tables
GROUP = "extraction"
TABLES = ("raw_attributes", "catalog_products", "quarantine", INGESTS_TABLE)  # the asset first: its materialization comes first

RAW_ATTRIBUTES_SPECS = [
    table_spec(
        "raw_attributes", group=GROUP, code_version=CODE_VERSION, kinds={"openai"}, schema=RAW_ATTRIBUTE_TABLE_SCHEMA,
        description=(
            "Key-value attributes of a sample of the shard's products, from the teacher: the VLM (`openai`, "
            "cached per product, image and prompt version) or its offline stand-in, which reads the products' "
            "content (types discovered from the shard's titles). Neither reads the catalog's labels unless the "
            "catalog resource's `teacher_columns` name them."
        ),
    ),
    table_spec(
        "catalog_products", group=GROUP, code_version=CODE_VERSION, schema=STORED_PRODUCT_SCHEMA,
        description=(
            "The shard's validated catalog rows (text cut to the ingest limits), with the teacher's pixel colour, "
            "whether the product was in the labeled sample, and the catalog's `label_<key>` columns where it has "
            "labels (ground truth for evaluation only)."
        ),
    ),
    table_spec(
        "quarantine", group=GROUP, code_version=CODE_VERSION, schema=QUARANTINE_SCHEMA,
        description=(
            "Rows that were refused, each with its stage and reason: catalog rows that failed validation and "
            "sampled products the extractor could not label (written with the shard); products whose image "
            "failed the publish checks (stage `publish`, written by `landing_pages`)."
        ),
    ),
    table_spec(
        INGESTS_TABLE, group=GROUP, code_version=CODE_VERSION, schema=INGESTS_SCHEMA,
        description="The content fingerprint of each shard when it was last ingested; `catalog_refresh_sensor` compares the catalog with it.",
    ),
]


# The settings the step hands to the core, defined there (defaults and docs).
EXTRACTION_SETTINGS = (
    CoreSettings(SampleSpec, rename={"share": "sample_share", "min_count": "sample_min", "max_count": "sample_max"}),
    CoreSettings(
        VLMExtractionConfig,
        set_by_dagster={"domain": "run config `domain`, else described from the shard's categories", "inputs": "the catalog resource's teacher_columns"},
    ),
    CoreSettings(DiscoveryConfig, prefix="type_"),  # the offline teacher's product types
)


class ExtractionConfig(with_core_settings(Config, *EXTRACTION_SETTINGS)):
    domain: str | None = None  # VLM: what the catalog sells, e.g. "home furnishing"; default: from its categories
    min_coverage: float = 0.9  # check: share of sampled products that got attributes
    max_quarantine_share: float = 0.05  # check: share of the shard's rows quarantined


@multi_asset(
    name="raw_attributes",
    specs=RAW_ATTRIBUTES_SPECS,
    partitions_def=shard_partitions,
    check_specs=[
        shard_check("attribute_coverage", "raw_attributes", "Share of sampled products with attributes ≥ min_coverage."),
        shard_check("quarantine_share", "raw_attributes", "Share of catalog rows quarantined ≤ max_quarantine_share."),
        shard_check("sample_accounted_for", "raw_attributes", "Every sampled product has attributes or a quarantine reason: nothing lost."),
    ],
)
def raw_attributes(context: AssetExecutionContext, config: ExtractionConfig, catalog: CatalogResource, data_home: DataHomeResource, llm: LLMResource):
    """Validate the shard's rows (bad ones to `quarantine` with a reason), label its sample
    with the teacher, and store products, attributes and the shard's ingest fingerprint."""
    shard = context.partition_key
    warehouse = data_home.warehouse
    fingerprint = shard_fingerprints(catalog.table()).get(shard)  # before loading: a later edit is then seen as a change
    loaded = load_catalog(catalog.table(), shards=[shard], limits=catalog.ingest_limits())
    products = loaded.products
    context.log.info("shard %s: %d valid products, %d quarantined", shard, products.height, loaded.quarantine.height)
    if loaded.cut_counts:  # the text every later stage reads is the cut one: say so where a person looks
        context.log.info("shard %s: text cut to the ingest limits in %d products: %s", shard, loaded.cut_products, loaded.cut_counts)
    sample = select_sample(products, config.to_core(SampleSpec))
    # The offline teacher's eye costs nothing: every product whose text names no colour gets
    # its pixel colour and what that is worth, stored with the product (scoring reads them).
    offline = OfflineExtractor.for_shard(products, catalog.teacher_inputs(), config.to_core(DiscoveryConfig))
    products = offline.with_pixel_colors(products)
    sample = sample.join(products.select("product_id", PIXEL_COLOR, PIXEL_WEIGHT), on="product_id", how="left")
    extractor = choose_extractor(llm, warehouse, config, offline, products, on_progress=lambda p: context.log.info(p.describe()))
    context.log.info("extractor: %s (%s); teacher reads %s", extractor.name, extractor.prompt_version, catalog.teacher_inputs().describe())
    result = extractor.extract(sample)
    context.log.info("extractor %s labeled %d of %d sampled products", extractor.name, result.attributes.get_column("product_id").n_unique(), sample.height)
    budget_stop = result.stats.get("budget_reached") or ""
    if budget_stop:
        context.log.warning(
            "%s: %d sampled products were not asked (quarantined, not cached: the next run asks them)", budget_stop, result.stats["budget_stopped"]
        )

    attributes = result.attributes.with_columns(pl.lit(shard).alias("shard"), pl.lit(extractor.name).alias("extractor"))
    quarantine = pl.concat(
        [
            loaded.quarantine,
            result.quarantine.with_columns(pl.lit(shard).alias("shard"), pl.lit("extraction").alias("stage")).select(loaded.quarantine.columns),
        ]
    )
    warehouse.replace_rows("catalog_products", products.with_columns(sample_flag(products, sample)), "shard", [shard])
    warehouse.replace_rows("raw_attributes", attributes, "shard", [shard])
    warehouse.replace_rows("quarantine", quarantine, "shard", [shard])
    record_ingest(warehouse, shard, fingerprint)

    labeled = attributes.get_column("product_id").n_unique()
    coverage = labeled / sample.height if sample.height else 0.0
    accounted = set(attributes.get_column("product_id").to_list()) | set(result.quarantine.get_column("product_id").to_list())
    lost = sorted(set(sample.get_column("product_id").to_list()) - accounted)
    total_rows = products.height + loaded.quarantine.height
    quarantine_share = loaded.quarantine.height / total_rows if total_rows else 0.0
    tables = written_table_metadata(warehouse, TABLES, shard)
    yield MaterializeResult(
        asset_key="raw_attributes",
        metadata={
            **tables["raw_attributes"],
            "shard": shard,
            "extractor": extractor.name,
            "prompt_version": extractor.prompt_version,
            "catalog_rows": total_rows,
            "valid_products": products.height,
            "quarantined": quarantine.height,
            "quarantine_reasons": MetadataValue.json(dict(quarantine.group_by("reason").len().iter_rows())),
            "cut_products": loaded.cut_products,
            "cut_fields": MetadataValue.json(loaded.cut_counts),
            "sampled_products": sample.height,
            "labeled_products": labeled,
            "extraction_quarantined": result.quarantine.height,
            "attribute_rows": attributes.height,
            "attributes_per_product": round(attributes.height / labeled, 2) if labeled else 0.0,
            "teacher_reads": catalog.teacher_inputs().describe(),
            "stopped_by_budget": budget_stop or "no",
            "teacher_per_key": MetadataValue.json(teacher_agreement(result.attributes, sample)),
            "discovered_product_types": MetadataValue.json({t.value: t.count for t in getattr(extractor, "product_types", [])[:60]}),
            **{f"stats/{k}": v for k, v in result.stats.items()},
        },
        check_results=[
            AssetCheckResult(
                check_name="attribute_coverage",
                passed=coverage >= config.min_coverage,
                severity=AssetCheckSeverity.WARN,
                metadata={"value": coverage, "threshold": config.min_coverage},
            ),
            AssetCheckResult(
                check_name="sample_accounted_for",
                passed=not lost,
                severity=AssetCheckSeverity.ERROR,
                metadata={"lost_products": len(lost), "examples": MetadataValue.json(lost[:20])},
            ),
            AssetCheckResult(
                check_name="quarantine_share",
                passed=quarantine_share <= config.max_quarantine_share,
                severity=AssetCheckSeverity.WARN,
                metadata={"value": quarantine_share, "threshold": config.max_quarantine_share},
            ),
        ],
    )
    for table in TABLES[1:]:
        yield MaterializeResult(asset_key=table, metadata={**tables[table], "shard": shard})


def sample_flag(products: pl.DataFrame, sample: pl.DataFrame) -> pl.Expr:
    return pl.col("product_id").is_in(sample.get_column("product_id").implode()).alias(IN_SAMPLE)


def choose_extractor(
    llm: LLMResource,
    warehouse: Warehouse,
    config: ExtractionConfig,
    offline: OfflineExtractor,
    products: pl.DataFrame,
    on_progress: Callable[[LLMProgress], None] | None = None,
) -> AttributeExtractor:
    """The VLM when the llm resource resolves to `openai`, else `offline`, the offline
    teacher of this shard (`products`: all of the shard's validated products).
    `on_progress` receives the VLM client's progress (the run log)."""
    if llm.resolved_extractor() == "openai":
        vlm = config.to_core(VLMExtractionConfig, domain=config.domain or describe_domain(products), inputs=offline.inputs)
        return VLMExtractor(llm.client(warehouse, on_progress), vlm)
    return offline
