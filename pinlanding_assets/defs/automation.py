"""Declarative automation of the global assets: publish once per batch of shard updates.

Per-shard runs (`shard_refresh`) ingest and score their shard; `collection_queries` and
`landing_pages` read every shard, so materializing them in each shard's run would rebuild
the site once per shard. Instead they carry `PUBLISH_AFTER_SHARD_UPDATES`, evaluated by the
`publish_after_shard_updates` sensor (in the daemon, `make ui`): one run of both assets
after the shards refreshed together have all finished.
"""

from dagster import AssetSelection, AutomationCondition, AutomationConditionSensorDefinition, DefaultSensorStatus


# Updated scores (any shard) make the pages stale; a new vocabulary, model or teacher answers
# do not by themselves (the shards are re-scored with them first). Wait while any shard's scores are queued
# or running, so shards refreshed together are published together.
PUBLISH_AFTER_SHARD_UPDATES = (
    AutomationCondition.any_deps_updated().ignore(AssetSelection.assets("curated_vocabulary", "clip_model", "raw_attributes")).since_last_handled()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("once after shard updates settle")

publish_after_shard_updates = AutomationConditionSensorDefinition(
    "publish_after_shard_updates",
    # Both publish steps with every table they write (each step is one multi-asset).
    target=AssetSelection.assets("collection_queries", "landing_pages").required_multi_asset_neighbors(),
    default_status=DefaultSensorStatus.RUNNING,  # acts only on score updates, i.e. runs someone started
    minimum_interval_seconds=30,
    emit_backfills=False,  # one plain run of both steps
    description="Publish once after a batch of shard refreshes settles (collection_queries + landing_pages in one run).",
)
