"""Kill a materialization in the middle of VLM extraction, run it again: the result equals
an uninterrupted run, no row is doubled, and no answered product is paid for twice (only
the calls in flight at the moment of the kill can repeat: at most one per worker being
answered, plus one per worker answered but still waiting its turn to be stored)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pinlanding_assets.core.warehouse import Warehouse
from pinlanding_tests.fake_openai_server import FakeOpenAIServer, first_user_text

MAX_CONCURRENCY = 2
MAX_REPEATS = 2 * MAX_CONCURRENCY
RUN_SHARD = """
from dagster import DagsterInstance
from pinlanding_assets.definitions import defs
with DagsterInstance.ephemeral() as instance:
    instance.add_dynamic_partitions("catalog_shard", ["apparel"])
    result = defs.resolve_job_def("shard_ingest").execute_in_process(
        instance=instance, partition_key="apparel",
        run_config={"resources": {"llm": {"config": {"max_concurrency": %d, "timeout_s": 10}}}},
    )
    raise SystemExit(0 if result.success else 1)
""" % MAX_CONCURRENCY


def answer(body: dict) -> dict:
    time.sleep(0.15)  # a slow endpoint, so the kill lands mid-shard
    text = first_user_text(body).lower()
    color = next((c for c in ("navy blue", "black", "white", "red", "green", "blue", "grey", "pink", "yellow", "brown") if c in text), "multi")
    return {"attributes": [{"key": "color", "value": color}, {"key": "product_type", "value": "garment"}]}


def start_shard_run(home: Path, server: FakeOpenAIServer, sample_catalog: Path) -> subprocess.Popen:
    env = dict(os.environ, PINLANDING_HOME=str(home), PINLANDING_CATALOG=str(sample_catalog), PINLANDING_EXTRACTOR="openai", OPENAI_API_KEY="test-key", OPENAI_BASE_URL=server.base_url)
    return subprocess.Popen([sys.executable, "-c", RUN_SHARD], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def stored_attributes(home: Path):
    return Warehouse(home / "warehouse.duckdb").read("SELECT product_id, key, value, source FROM raw_attributes ORDER BY ALL")


def test_killed_extraction_resumes_without_paying_twice(sample_catalog, tmp_path):
    with FakeOpenAIServer() as server:
        server.responder = answer
        reference_home = tmp_path / "reference"
        assert start_shard_run(reference_home, server, sample_catalog).wait(300) == 0
        sample_size = server.request_count()
        assert sample_size >= 40
        server.reset()

        home = tmp_path / "interrupted"
        process = start_shard_run(home, server, sample_catalog)
        deadline = time.monotonic() + 240
        while server.request_count() < sample_size // 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
        calls_before_kill = server.request_count()
        assert 0 < calls_before_kill < sample_size, "the kill must land in the middle of extraction"

        assert start_shard_run(home, server, sample_catalog).wait(300) == 0
        calls_total = server.request_count()
        assert stored_attributes(home).equals(stored_attributes(reference_home))
        # Answers stored before the kill are not asked again; only calls in flight can repeat.
        assert calls_total - sample_size <= MAX_REPEATS, (calls_before_kill, calls_total, sample_size)
        prompts = [first_user_text(r.body) for r in server.requests]
        assert len(prompts) - len(set(prompts)) <= MAX_REPEATS

        duplicates = Warehouse(home / "warehouse.duckdb").read(
            "SELECT product_id, key, value, count(*) AS n FROM raw_attributes GROUP BY ALL HAVING n > 1"
        )
        assert duplicates.is_empty()
        assert start_shard_run(home, server, sample_catalog).wait(300) == 0
        assert server.request_count() == calls_total  # a third run pays nothing
