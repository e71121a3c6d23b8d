"""Jobs: how a refresh runs. Partitioned steps run per catalog shard.

* `shard_refresh` (per shard): ingest the shard and score it with the current model. What
  the catalog sensor starts when a shard is new or changed; the pages are rebuilt once
  after a batch of these by `publish_after_shard_updates` (sensors.py), not per shard.
* `train_model`: re-curate the vocabulary and retrain the encoder on all shards; when it
  succeeds, `rescore_after_training` starts `shard_refresh` for every shard (the full refresh).
* `shard_ingest`, `shard_scoring`, `publish_pages`: the single steps, for `make run` and
  for operators who want one stage only.
"""

from dagster import AssetSelection, define_asset_job

shard_refresh_job = define_asset_job(
    "shard_refresh",
    selection=AssetSelection.assets("raw_attributes", "product_attribute_scores"),
    description="Refresh one shard with the current model: ingest and score it (pages follow once per batch of shard refreshes).",
)
shard_ingest_job = define_asset_job("shard_ingest", selection=AssetSelection.assets("raw_attributes"), description="Validate a shard and extract attributes of its sample.")
train_model_job = define_asset_job("train_model", selection=AssetSelection.assets("curated_vocabulary", "clip_model"), description="Curate the vocabulary and train the dual encoder on all shards.")
shard_scoring_job = define_asset_job("shard_scoring", selection=AssetSelection.assets("product_attribute_scores"), description="Score every product of a shard.")
publish_pages_job = define_asset_job("publish_pages", selection=AssetSelection.assets("collection_queries", "landing_pages"), description="Mine collections, match pages on Spark, render the site.")

ALL_JOBS = [shard_refresh_job, shard_ingest_job, train_model_job, shard_scoring_job, publish_pages_job]
