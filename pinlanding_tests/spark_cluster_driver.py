"""A driver process for the standalone-cluster test: matches on the master named by
`PINLANDING_SPARK_MASTER` through the project's own `spark_resource`, as `make run` would.

A separate process because a classic driver holds one SparkContext per process and the
test process already has a local one (conftest's `spark`).

    python -m pinlanding_tests.spark_cluster_driver INPUTS OUT [INPUT_URI]

INPUTS holds products.parquet and collections.parquet; OUT receives pages_arrow.parquet
(inputs sent as Arrow data), pages_uri.parquet (inputs staged under INPUT_URI, when given)
and run.json (the master the session ran on).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl

from pinlanding_assets.core.matching import MatchingConfig, match_pages_spark
from pinlanding_assets.defs.resources import spark_resource


def main(inputs: Path, out: Path, input_uri: str | None) -> None:
    products = pl.read_parquet(inputs / "products.parquet")
    collections = pl.read_parquet(inputs / "collections.parquet")
    config = MatchingConfig(**json.loads((inputs / "config.json").read_text()))
    resource = spark_resource(home=str(out))
    session = resource.spark_session
    try:
        match_pages_spark(session, products, collections, config).write_parquet(out / "pages_arrow.parquet")
        if input_uri:
            match_pages_spark(session, products, collections, config, input_uri=input_uri).write_parquet(out / "pages_uri.parquet")
        (out / "run.json").write_text(json.dumps({"master": session.conf.get("spark.master")}))
    finally:
        session.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
