"""`raw_attributes`: validate one catalog shard and label its sample with the extractor."""


import polars as pl
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset

from ..core.catalog import load_catalog
from ..core.extraction import OfflineExtractor, SampleSpec, select_sample
from .partitions import shard_partitions
from .resources import CatalogResource, DataHomeResource


class ExtractionConfig(Config):
    sample_share: float = 0.2
    sample_min: int = 50
    sample_max: int | None = None
    seed: int = 0
    min_coverage: float = 0.9  # check: share of sampled products that got attributes
    max_quarantine_share: float = 0.05  # check: share of the shard's rows quarantined


@asset(
    partitions_def=shard_partitions,
    group_name="extraction",
    check_specs=[
        AssetCheckSpec("attribute_coverage", asset="raw_attributes", description="Share of sampled products with attributes ≥ min_coverage."),
        AssetCheckSpec("quarantine_share", asset="raw_attributes", description="Share of catalog rows quarantined ≤ max_quarantine_share."),
    ],
)
def raw_attributes(context: AssetExecutionContext, config: ExtractionConfig, catalog: CatalogResource, data_home: DataHomeResource) -> MaterializeResult:
    """Key-value attributes of a sample of the shard's products, from the extractor
    (offline stand-in for the VLM). Also stores the shard's validated products
    (`catalog_products`) and rejected rows with reasons (`quarantine`)."""
    shard = context.partition_key
    warehouse = data_home.warehouse
    loaded = load_catalog(catalog.table(), shards=[shard])
    products = loaded.products
    context.log.info("shard %s: %d valid products, %d quarantined", shard, products.height, loaded.quarantine.height)
    sample = select_sample(products, SampleSpec(config.sample_share, config.sample_min, config.sample_max, config.seed))
    extractor = OfflineExtractor()
    result = extractor.extract(sample)
    context.log.info("extractor %s labeled %d of %d sampled products", extractor.name, result.attributes.get_column("product_id").n_unique(), sample.height)

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

    labeled = attributes.get_column("product_id").n_unique()
    coverage = labeled / sample.height if sample.height else 0.0
    total_rows = products.height + loaded.quarantine.height
    quarantine_share = loaded.quarantine.height / total_rows if total_rows else 0.0
    return MaterializeResult(
        metadata={
            "shard": shard,
            "extractor": extractor.name,
            "catalog_rows": total_rows,
            "valid_products": products.height,
            "quarantined": quarantine.height,
            "quarantine_reasons": MetadataValue.json(dict(quarantine.group_by("reason").len().iter_rows())),
            "sampled_products": sample.height,
            "labeled_products": labeled,
            "attribute_rows": attributes.height,
            "attributes_per_product": round(attributes.height / labeled, 2) if labeled else 0.0,
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
                check_name="quarantine_share",
                passed=quarantine_share <= config.max_quarantine_share,
                severity=AssetCheckSeverity.WARN,
                metadata={"value": quarantine_share, "threshold": config.max_quarantine_share},
            ),
        ],
    )


def sample_flag(products: pl.DataFrame, sample: pl.DataFrame) -> pl.Expr:
    return pl.col("product_id").is_in(sample.get_column("product_id").implode()).alias("in_sample")
