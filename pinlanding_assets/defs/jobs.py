"""Jobs: the graph in the four steps a refresh takes (partitioned steps run per shard)."""

from dagster import AssetSelection, define_asset_job

from .partitions import shard_partitions

shard_ingest_job = define_asset_job("shard_ingest", selection=AssetSelection.assets("raw_attributes"), partitions_def=shard_partitions, description="Validate a shard and extract attributes of its sample.")
train_model_job = define_asset_job("train_model", selection=AssetSelection.assets("curated_vocabulary", "clip_model"), description="Curate the vocabulary and train the dual encoder on all shards.")
shard_scoring_job = define_asset_job("shard_scoring", selection=AssetSelection.assets("product_attribute_scores"), partitions_def=shard_partitions, description="Score every product of a shard.")
publish_pages_job = define_asset_job("publish_pages", selection=AssetSelection.assets("collection_queries", "landing_pages"), description="Mine collections, match pages on Spark, render the site.")

ALL_JOBS = [shard_ingest_job, train_model_job, shard_scoring_job, publish_pages_job]
