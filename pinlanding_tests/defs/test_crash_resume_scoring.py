"""Kill a shard's scoring in the middle, run it again: the scores equal those of an
uninterrupted run with the same model, and no row is doubled."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from pinlanding_assets.core.warehouse import Warehouse

RUN_STEPS = """
import sys
from dagster import DagsterInstance
from pinlanding_assets.definitions import defs
shards = ["accessories", "apparel", "footwear"]
config = {
    "train_model": {"ops": {"clip_model": {"config": {"epochs": 1, "min_steps": 20, "eval_max_products": 50, "min_recall_at_1": 0.0, "min_lift_over_prior": -1.0, "min_key_top1": 0.0, "min_key_precision": 0.0}}}},
    "shard_scoring": {"ops": {"product_attribute_scores": {"config": {"batch_size": 8, "min_assignment_precision": 0.0}}}},
}
with DagsterInstance.ephemeral() as instance:
    instance.add_dynamic_partitions("catalog_shard", shards)
    for step in sys.argv[1:]:
        job, _, shard = step.partition(":")
        result = defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=shard or None, run_config=config.get(job))
        assert result.success, step
"""


def run_steps(home: Path, sample_catalog: Path, *steps: str, wait: bool = True):
    env = dict(os.environ, PINLANDING_HOME=str(home), PINLANDING_CATALOG=str(sample_catalog), PINLANDING_EXTRACTOR="offline")
    process = subprocess.Popen([sys.executable, "-c", RUN_STEPS, *steps], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    if wait:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
    return process


def scores(home: Path):
    return Warehouse(home / "warehouse.duckdb").read("SELECT * EXCLUDE (shard) FROM product_attribute_scores WHERE shard = 'apparel' ORDER BY product_id, key, value")


def test_killed_scoring_reruns_to_the_same_result(sample_catalog, tmp_path):
    reference = tmp_path / "reference"
    run_steps(reference, sample_catalog, "shard_ingest:accessories", "shard_ingest:apparel", "shard_ingest:footwear", "train_model")
    interrupted = tmp_path / "interrupted"
    shutil.copytree(reference, interrupted)  # same trained model, nothing scored yet
    run_steps(reference, sample_catalog, "shard_scoring:apparel")

    process = run_steps(interrupted, sample_catalog, "shard_scoring:apparel", wait=False)
    progress = 0
    for line in process.stderr:  # kill once a few batches are encoded, before the shard is done
        if "encoded" in line and "/160 products" in line:
            progress += 1
            if progress >= 3:
                break
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)
    assert progress >= 3 and process.returncode != 0
    assert not Warehouse(interrupted / "warehouse.duckdb").has_table("product_attribute_scores") or scores(interrupted).is_empty()

    run_steps(interrupted, sample_catalog, "shard_scoring:apparel")
    assert scores(interrupted).equals(scores(reference))
    doubled = Warehouse(interrupted / "warehouse.duckdb").read(
        "SELECT product_id, key, value, count(*) AS n FROM product_attribute_scores GROUP BY ALL HAVING n > 1"
    )
    assert doubled.is_empty()
