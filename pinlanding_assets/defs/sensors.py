"""Catalog refresh: notice new or changed shards, refresh only those.

`catalog_refresh_sensor` keeps, in its cursor, a content fingerprint per shard
(`shard_fingerprints`). On each tick: a new shard becomes a dynamic partition and gets a
`shard_refresh` run; a changed shard gets one run; an unchanged catalog gets none. Run keys
carry the fingerprint, so a tick evaluated twice never starts the same refresh twice.
`rescore_after_training` turns a successful `train_model` run into a refresh of every shard,
so scores and pages move to the new model together. A weekly schedule (stopped by default)
starts `train_model`.
"""

import json

from dagster import (
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    RunStatusSensorContext,
    ScheduleDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_status_sensor,
    sensor,
)

from ..core.catalog import shard_fingerprints
from .jobs import shard_refresh_job, train_model_job
from .partitions import shard_partitions
from .resources import CatalogResource


@sensor(job=shard_refresh_job, minimum_interval_seconds=300, default_status=DefaultSensorStatus.STOPPED)
def catalog_refresh_sensor(context: SensorEvaluationContext, catalog: CatalogResource):
    """Adds partitions for new shards and requests a refresh of new or changed shards."""
    current = shard_fingerprints(catalog.table())
    previous = json.loads(context.cursor) if context.cursor else {}
    known = set(context.instance.get_dynamic_partitions(shard_partitions.name))
    new = sorted(s for s in current if s not in known)
    changed = sorted(s for s, fp in current.items() if previous.get(s) != fp)
    if not new and not changed:
        return SkipReason(f"catalog unchanged ({len(current)} shards)")
    context.log.info("new shards %s; changed shards %s", new, [s for s in changed if s not in new])
    return SensorResult(
        dynamic_partitions_requests=[shard_partitions.build_add_request(new)] if new else [],
        run_requests=[RunRequest(partition_key=s, run_key=f"refresh-{s}-{current[s]}", tags={"pinlanding/reason": "new" if s in new else "changed"}) for s in changed],
        cursor=json.dumps(current, sort_keys=True),
    )


@run_status_sensor(run_status=DagsterRunStatus.SUCCESS, monitored_jobs=[train_model_job], request_job=shard_refresh_job, default_status=DefaultSensorStatus.STOPPED)
def rescore_after_training(context: RunStatusSensorContext):
    """After a new model, refresh every shard (scores and pages move to the new model)."""
    shards = context.instance.get_dynamic_partitions(shard_partitions.name)
    run_id = context.dagster_run.run_id
    return [RunRequest(partition_key=s, run_key=f"rescore-{run_id}-{s}", tags={"pinlanding/reason": "new model"}) for s in shards]


weekly_model_retrain = ScheduleDefinition(
    job=train_model_job,
    cron_schedule="0 3 * * 0",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Retrain the encoder weekly; rescore_after_training then refreshes every shard.",
)
