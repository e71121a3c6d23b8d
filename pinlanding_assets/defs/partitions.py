"""Catalog shards as dynamic partitions (slug keys: commas and slashes break UI backfills)."""

import warnings

from dagster import AssetCheckSpec, DynamicPartitionsDefinition, PreviewWarning

shard_partitions = DynamicPartitionsDefinition(name="catalog_shard")


def shard_check(name: str, asset: str, description: str, blocking: bool = False) -> AssetCheckSpec:
    """A check of a shard-partitioned asset that is evaluated per shard: with the check's own
    `partitions_def`, each evaluation records its shard (without one, dagster 1.13 records
    none, and the UI and alerts cannot tell which shard failed)."""
    with warnings.catch_warnings():  # partitioned checks are a preview feature of dagster 1.13: warn once in the docs, not on every import
        warnings.simplefilter("ignore", PreviewWarning)
        return AssetCheckSpec(name, asset=asset, description=description, blocking=blocking, partitions_def=shard_partitions)
