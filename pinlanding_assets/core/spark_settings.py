"""The Spark session's settings: one definition for the pipeline's resource
(defs/resources.py) and the benchmarks (bench/bench_matching.py), so a figure measured
there is the pipeline's session."""

from __future__ import annotations

import os
import sys


def spark_sql_settings() -> dict[str, str]:
    """Settings of the session itself, also sent to a Spark Connect server. Eight shuffle
    partitions (`PINLANDING_SPARK_SHUFFLE_PARTITIONS`): matching shuffles only the top of
    each page, and Spark's default 200 would schedule 200 near-empty tasks per shuffle."""
    return {
        "spark.sql.shuffle.partitions": os.environ.get("PINLANDING_SPARK_SHUFFLE_PARTITIONS", "8"),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }


def classic_spark_settings(master: str | None, home: str, driver_memory: str | None = None) -> dict[str, str]:
    """A classic session (local or a cluster master): `master`, else
    `PINLANDING_SPARK_MASTER`, else local[*]; the driver's memory `driver_memory`, else
    `PINLANDING_SPARK_DRIVER_MEMORY`, else 2g (local mode: the whole engine's)."""
    return {
        "spark.master": master or os.environ.get("PINLANDING_SPARK_MASTER", "local[*]"),
        "spark.app.name": "pinlanding",
        "spark.ui.enabled": "false",
        "spark.log.level": "WARN",  # set at session start: no sparkContext call in the assets
        **spark_sql_settings(),
        "spark.driver.memory": driver_memory or os.environ.get("PINLANDING_SPARK_DRIVER_MEMORY", "2g"),
        "spark.sql.warehouse.dir": f"{home}/spark-warehouse",
        # Python workers must run this environment (torch, pandas), not the system python3.
        "spark.pyspark.python": os.environ.get("PYSPARK_PYTHON", sys.executable),
    }
