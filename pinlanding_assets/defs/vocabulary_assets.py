"""`curated_vocabulary`: the attribute set every later stage uses."""


import polars as pl
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset

from ..core.vocabulary import CurationConfig, curate_vocabulary as curate
from ..core.vocabulary import kept_attributes
from .extraction_assets import raw_attributes
from .resources import DataHomeResource


class VocabularyConfig(Config):
    min_count: int = 5
    min_share: float = 0.002


@asset(deps=[raw_attributes], group_name="curation")
def curated_vocabulary(context: AssetExecutionContext, config: VocabularyConfig, data_home: DataHomeResource) -> MaterializeResult:
    """One row per raw attribute value of all shards: canonical form, frequency, kept or
    dropped and why."""
    warehouse = data_home.warehouse
    raw = warehouse.read_table("raw_attributes")
    if raw.is_empty():
        raise ValueError("raw_attributes is empty: materialize raw_attributes for at least one shard first")
    vocabulary = curate(raw, CurationConfig(config.min_count, config.min_share))
    warehouse.replace_table("curated_vocabulary", vocabulary)
    kept = kept_attributes(vocabulary)
    per_key = dict(kept.group_by("key").len().sort("key").iter_rows())
    context.log.info("vocabulary: %d kept attributes from %d raw values", kept.height, vocabulary.height)
    return MaterializeResult(
        metadata={
            "raw_values": vocabulary.height,
            "kept_attributes": kept.height,
            "dropped_values": vocabulary.filter(pl.col("status") == "dropped").height,
            "kept_per_key": MetadataValue.json(per_key),
            "preview": MetadataValue.md(kept.head(30).to_pandas().to_markdown(index=False) if kept.height else "(empty)"),
        }
    )
