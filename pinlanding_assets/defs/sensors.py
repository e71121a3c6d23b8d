"""Catalog refresh: notice new, changed or removed shards, refresh only those.

`catalog_refresh_sensor` compares each shard's content fingerprint (`shard_fingerprints`)
with the fingerprint it had when it was last ingested (table `shard_ingests`, written by
`raw_attributes`), so its first tick after a `make run` starts nothing for an unchanged
catalog. A new shard becomes a dynamic partition and gets a `shard_refresh` run; a changed
shard gets one run; a shard that left the catalog loses its partition and a `publish_pages`
run retires it from the pages. Run keys carry the fingerprints, and the cursor remembers what
was requested, so a tick evaluated twice never starts the same refresh twice.
`rescore_after_training` turns a successful `train_model` run into a refresh of every shard,
so scores and pages move to the new model together. A weekly schedule (stopped by default)
starts `train_model`. The runs they start carry the run profile (`run_profile` resource,
`$PINLANDING_RUN_PROFILE`: the same {job: run config} file `make run --config` reads), so a
refresh keeps the settings of the runs a person started, e.g. uncertainty sampling.

Refresh does not fan out: a `shard_refresh` run ingests and scores its shard only. The global
assets (`collection_queries`, `landing_pages`) carry `PUBLISH_AFTER_SHARD_UPDATES` and the
`publish_after_shard_updates` automation sensor (automation.py) materializes them once, in one run, after a
batch of shard updates has settled (no shard's scores still queued or running), instead of
once per shard. A new model alone does not republish: the pages move when the shards are
re-scored with it.
"""

import hashlib
import json

from dagster import (
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    RunStatusSensorContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_status_sensor,
    schedule,
    sensor,
)

from ..core.catalog import shard_fingerprints
from ..core.ingest_state import catalog_changes, ingested_fingerprints
from .jobs import JOB_PARTS, publish_pages_job, shard_refresh_job, train_model_job
from .partitions import shard_partitions
from .resources import CatalogResource, DataHomeResource, RunProfileResource


@sensor(jobs=[shard_refresh_job, publish_pages_job], minimum_interval_seconds=300, default_status=DefaultSensorStatus.STOPPED)
def catalog_refresh_sensor(context: SensorEvaluationContext, catalog: CatalogResource, data_home: DataHomeResource, run_profile: RunProfileResource):
    """Adds partitions for new shards, removes those of shards that left the catalog, and
    requests a refresh of new or changed shards (a publish run for removed ones)."""
    requested = json.loads(context.cursor) if context.cursor else {}
    known = set(context.instance.get_dynamic_partitions(shard_partitions.name))
    changes = catalog_changes(shard_fingerprints(catalog.table()), ingested_fingerprints(data_home.warehouse), requested, known)
    if changes.nothing:
        return SkipReason(f"catalog unchanged since its last ingest ({len(changes.current)} shards)")
    new, removed = changes.new, changes.removed
    context.log.info("new shards %s; changed shards %s; removed shards %s", new, [s for s in changes.changed if s not in new], removed)
    refresh_config = run_profile.run_config(shard_refresh_job.name, JOB_PARTS[shard_refresh_job.name])
    runs = [
        RunRequest(
            job_name=shard_refresh_job.name, partition_key=s, run_key=f"refresh-{s}-{changes.current[s]}", run_config=refresh_config,
            tags={"pinlanding/reason": "new" if s in new else "changed"},
        )
        for s in changes.changed
    ]
    if removed:
        digest = hashlib.sha1(json.dumps(removed).encode()).hexdigest()[:12]
        runs.append(RunRequest(
            job_name=publish_pages_job.name, run_key=f"retire-{digest}", run_config=run_profile.run_config(publish_pages_job.name),
            tags={"pinlanding/reason": f"removed shards: {', '.join(removed)}"},
        ))
    return SensorResult(
        dynamic_partitions_requests=[r for r in (shard_partitions.build_add_request(new) if new else None, shard_partitions.build_delete_request(removed) if removed else None) if r],
        run_requests=runs,
        cursor=json.dumps(changes.requested_after(requested), sort_keys=True),
    )


@run_status_sensor(run_status=DagsterRunStatus.SUCCESS, monitored_jobs=[train_model_job], request_job=shard_refresh_job, default_status=DefaultSensorStatus.STOPPED)
def rescore_after_training(context: RunStatusSensorContext, run_profile: RunProfileResource):
    """After a new model, refresh every shard (scores and pages move to the new model)."""
    shards = context.instance.get_dynamic_partitions(shard_partitions.name)
    run_id = context.dagster_run.run_id
    config = run_profile.run_config(shard_refresh_job.name, JOB_PARTS[shard_refresh_job.name])
    return [RunRequest(partition_key=s, run_key=f"rescore-{run_id}-{s}", run_config=config, tags={"pinlanding/reason": "new model"}) for s in shards]


@schedule(job=train_model_job, cron_schedule="0 3 * * 0", default_status=DefaultScheduleStatus.STOPPED, description="Retrain the encoder weekly; rescore_after_training then refreshes every shard.")
def weekly_model_retrain(context, run_profile: RunProfileResource):
    return RunRequest(run_config=run_profile.run_config(train_model_job.name))

