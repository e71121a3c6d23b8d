"""`collection_queries`: attribute combinations worth a page, with their titles.

Global (not partitioned): a collection such as "Black Handbags for Women" may draw products
from several shards, so combinations are mined over the assigned attributes of all shards.
"""


import polars as pl
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset

from ..core.collections import MiningConfig, mine_combinations, write_collections
from .resources import DataHomeResource
from .scoring_assets import product_attribute_scores


class CollectionConfig(Config):
    min_support: int = 10
    max_attributes: int = 4
    max_collections: int = 5000
    quality_cutoff: int = 4


@asset(deps=[product_attribute_scores], group_name="pages")
def collection_queries(context: AssetExecutionContext, config: CollectionConfig, data_home: DataHomeResource) -> MaterializeResult:
    warehouse = data_home.warehouse
    assignments = warehouse.read("SELECT product_id, key, value FROM product_attribute_scores WHERE assigned")
    mining = MiningConfig(min_support=config.min_support, max_attributes=config.max_attributes, max_collections=config.max_collections, quality_cutoff=config.quality_cutoff)
    combos = mine_combinations(assignments, mining)
    collections = write_collections(combos, mining)
    warehouse.replace_table("collection_queries", collections)
    kept = collections.filter(pl.col("status") == "kept")
    context.log.info("%d combinations mined, %d collections kept", combos.height, kept.height)
    return MaterializeResult(
        metadata={
            "combinations": combos.height,
            "kept": kept.height,
            "by_status": MetadataValue.json(dict(collections.group_by("status").len().iter_rows())),
            "writer": "template",
            "sample_titles": MetadataValue.json(kept.get_column("title").head(20).to_list()),
        }
    )
