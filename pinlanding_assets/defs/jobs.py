"""Jobs: how a refresh runs. Partitioned steps run per catalog shard.

* `shard_refresh` (per shard): ingest the shard and score it with the current model. What
  the catalog sensor starts when a shard is new or changed; the pages are rebuilt once
  after a batch of these by `publish_after_shard_updates` (sensors.py), not per shard.
* `train_model`: re-curate the vocabulary and retrain the encoder on all shards; when it
  succeeds, `rescore_after_training` starts `shard_refresh` for every shard (the full refresh).
* `shard_ingest`, `shard_scoring`, `publish_pages`: the single steps, for `make run` and
  for operators who want one stage only.

Jobs select steps, not single tables: a step writes all of its tables at once (one
`@multi_asset` each, `defs/tables.py`), so selecting a step selects every table it writes.
"""

from dagster import AssetSelection, define_asset_job


def steps(*assets: str) -> AssetSelection:
    """Every table the steps of the given assets write (a step is one multi-asset)."""
    return AssetSelection.assets(*assets).required_multi_asset_neighbors()


shard_refresh_job = define_asset_job(
    "shard_refresh",
    selection=steps("raw_attributes", "product_attribute_scores"),
    description="Refresh one shard with the current model: ingest and score it (pages follow once per batch of shard refreshes).",
)
shard_ingest_job = define_asset_job("shard_ingest", selection=steps("raw_attributes"), description="Validate a shard and extract attributes of its sample.")
train_model_job = define_asset_job("train_model", selection=steps("curated_vocabulary", "clip_model"), description="Curate the vocabulary and train the dual encoder on all shards.")
shard_scoring_job = define_asset_job("shard_scoring", selection=steps("product_attribute_scores"), description="Score every product of a shard.")
publish_pages_job = define_asset_job("publish_pages", selection=steps("collection_queries", "landing_pages"), description="Mine collections, match pages on Spark, render the site.")

# Jobs made of other jobs' steps: their run config is those jobs' (RunProfileResource).
JOB_PARTS = {shard_refresh_job.name: (shard_ingest_job.name, shard_scoring_job.name)}

ALL_JOBS = [shard_refresh_job, shard_ingest_job, train_model_job, shard_scoring_job, publish_pages_job]
