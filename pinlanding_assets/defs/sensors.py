"""Sensors: register the catalog's shards as partitions and ingest the new ones."""


from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, sensor

from ..core.catalog import list_shards
from .jobs import shard_ingest_job
from .partitions import shard_partitions
from .resources import CatalogResource


@sensor(job=shard_ingest_job, minimum_interval_seconds=300, default_status=DefaultSensorStatus.STOPPED)
def catalog_shard_sensor(context: SensorEvaluationContext, catalog: CatalogResource) -> SensorResult:
    """Adds a partition for every catalog shard not yet known and requests its ingestion."""
    shards = list_shards(catalog.table())
    known = set(context.instance.get_dynamic_partitions(shard_partitions.name))
    new = [s for s in shards if s not in known]
    if new:
        context.log.info("new catalog shards: %s", new)
    return SensorResult(
        dynamic_partitions_requests=[shard_partitions.build_add_request(new)] if new else [],
        run_requests=[RunRequest(partition_key=s, run_key=f"ingest-{s}") for s in new],
    )
