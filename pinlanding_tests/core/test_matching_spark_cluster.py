"""Matching on real Spark deployments started from the pyspark package on loopback
(conftest's `spark_standalone` and `spark_connect_url`): a standalone cluster driven the way
`make run` drives it (`PINLANDING_SPARK_MASTER`), and Spark Connect. Both give exactly the
pages of the DuckDB reference (and so of local Spark, test_matching_spark.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl

from pinlanding_assets.core.matching import MatchingConfig, match_pages_duckdb, match_pages_spark, synthetic_inputs
from pinlanding_tests.spark_servers import REPO_ROOT

CONFIG = MatchingConfig(min_relevance=0.35, min_page_size=3, max_page_size=8)


def test_standalone_cluster_pages_equal_the_reference(spark_standalone: str, tmp_path: Path) -> None:
    products, collections = synthetic_inputs(2500, 200, seed=1)
    inputs, out = tmp_path / "inputs", tmp_path / "out"
    inputs.mkdir()
    out.mkdir()
    products.write_parquet(inputs / "products.parquet")
    collections.write_parquet(inputs / "collections.parquet")
    (inputs / "config.json").write_text(json.dumps(CONFIG.__dict__))
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED")}
    env |= {"PINLANDING_SPARK_MASTER": spark_standalone, "PINLANDING_SPARK_DRIVER_MEMORY": "1g", "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    shared = (tmp_path / "shared-input").as_uri()  # every node of this cluster sees this filesystem
    done = subprocess.run(
        [sys.executable, "-m", "pinlanding_tests.spark_cluster_driver", str(inputs), str(out), shared],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "run.json").read_text())["master"] == spark_standalone
    reference = match_pages_duckdb(products, collections, CONFIG)
    assert reference.get_column("slug").n_unique() > 15
    assert pl.read_parquet(out / "pages_arrow.parquet").equals(reference)
    assert pl.read_parquet(out / "pages_uri.parquet").equals(reference)


def test_spark_connect_pages_equal_the_reference(spark_connect, tmp_path: Path) -> None:
    products, collections = synthetic_inputs(2500, 200, seed=1)
    reference = match_pages_duckdb(products, collections, CONFIG)
    assert reference.get_column("slug").n_unique() > 15
    assert match_pages_spark(spark_connect, products, collections, CONFIG).equals(reference)  # Arrow data through gRPC
    # A URI the server can read (here the same machine; on a cluster, shared storage).
    assert match_pages_spark(spark_connect, products, collections, CONFIG, input_uri=(tmp_path / "shared").as_uri()).equals(reference)
