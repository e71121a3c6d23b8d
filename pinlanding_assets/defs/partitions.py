"""Catalog shards as dynamic partitions (slug keys: commas and slashes break UI backfills)."""

from dagster import DynamicPartitionsDefinition

shard_partitions = DynamicPartitionsDefinition(name="catalog_shard")
