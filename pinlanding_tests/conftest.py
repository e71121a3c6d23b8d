"""Shared fixtures: paths to the real dataset and small catalogs built from it."""

from __future__ import annotations

import csv
import os
import shutil
import sys
from pathlib import Path

import pytest

from pinlanding_assets.core.java_runtime import REAL_JAVA_VARIABLE, use_java_runtime
from pinlanding_assets.core.settings import SAMPLE_CATALOG, SHARED_DATASET


@pytest.fixture(scope="session")
def shared_dataset() -> Path:
    if not (SHARED_DATASET / "styles.csv").is_file():
        pytest.fail(f"the shared dataset is missing at {SHARED_DATASET}")
    return SHARED_DATASET


@pytest.fixture(scope="session")
def sample_catalog() -> Path:
    return SAMPLE_CATALOG


def write_kaggle_slice(source: Path, target: Path, per_category: dict[str, int]) -> Path:
    """A Kaggle-layout catalog in `target` with the first N products of each masterCategory
    (images copied: a catalog's images must live under its own folder)."""
    target.mkdir(parents=True, exist_ok=True)
    (target / "images").mkdir(exist_ok=True)
    taken = {k: 0 for k in per_category}
    with (source / "styles.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = []
        for row in reader:
            cat = row["masterCategory"]
            if cat in taken and taken[cat] < per_category[cat]:
                taken[cat] += 1
                rows.append(row)
                shutil.copyfile(source / row["image"], target / row["image"])
    with (target / "styles.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return target


def write_generic_slice(source: Path, target: Path, per_category: dict[str, int], with_text: bool = False) -> Path:
    """A generic catalog (`products.csv`) of real products with no label columns: `id,title,
    image` only, or with `category,description` added (`with_text`: the merchant's
    subCategory, and a description written from the title as a shop would). No shard
    column: the catalog is one shard, `all`."""
    target.mkdir(parents=True, exist_ok=True)
    (target / "images").mkdir(exist_ok=True)
    taken = {k: 0 for k in per_category}
    rows = []
    with (source / "styles.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            cat = row["masterCategory"]
            if cat in taken and taken[cat] < per_category[cat]:
                taken[cat] += 1
                shutil.copyfile(source / row["image"], target / row["image"])
                out = {"id": row["id"], "title": row["productDisplayName"], "image": row["image"]}
                if with_text:
                    out |= {"category": row["subCategory"], "description": f"{row['productDisplayName']}, from our {row['subCategory'].lower()} range."}
                rows.append(out)
    with (target / "products.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return target


LABEL_FREE_MIX = {"Apparel": 120, "Accessories": 90, "Footwear": 70, "Personal Care": 40}


@pytest.fixture(scope="session")
def label_free_slice(shared_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~320 real products as a merchant would list them: id, title, image; no labels."""
    return write_generic_slice(shared_dataset, tmp_path_factory.mktemp("label_free"), LABEL_FREE_MIX)


@pytest.fixture(scope="session")
def label_free_text_slice(shared_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same products with a category and a description, still without labels."""
    return write_generic_slice(shared_dataset, tmp_path_factory.mktemp("label_free_text"), LABEL_FREE_MIX, with_text=True)


@pytest.fixture(scope="session")
def real_slice(shared_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~300 real products in three shards."""
    return write_kaggle_slice(shared_dataset, tmp_path_factory.mktemp("real_slice"), {"Apparel": 140, "Accessories": 90, "Footwear": 90})


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    """One local Spark session for the whole run (a JVM start costs seconds): two cores, no
    UI, two shuffle partitions, Arrow on; Python workers run this environment; the JVM runs
    on the Java the project picks (core/java_runtime.py), as in production."""
    from pyspark.sql import SparkSession

    previous = {name: os.environ.get(name) for name in ("PYSPARK_PYTHON", "JAVA_HOME", REAL_JAVA_VARIABLE)}
    os.environ["PYSPARK_PYTHON"] = sys.executable  # executors need torch/pandas, not system python3
    use_java_runtime()
    session = (
        SparkSession.builder.master("local[2]")
        .appName("pinlanding-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.warehouse.dir", str(tmp_path_factory.mktemp("spark-warehouse")))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def spark_standalone(tmp_path_factory: pytest.TempPathFactory):
    """A standalone master and one worker (1 core, 1 GB) on loopback for the whole run; its
    URL. Skipped, saying why, only when there is no Java."""
    from pinlanding_tests.spark_servers import java_missing_reason, start_standalone_cluster

    if reason := java_missing_reason():
        pytest.skip(reason)
    cluster = start_standalone_cluster(tmp_path_factory.mktemp("spark-standalone"))
    yield cluster.master_url
    cluster.stop()


@pytest.fixture(scope="session")
def spark_connect_url(tmp_path_factory: pytest.TempPathFactory):
    """A Spark Connect server (local[2]) on loopback for the whole run; its sc:// URL."""
    from pinlanding_tests.spark_servers import java_missing_reason, start_connect_server

    if reason := java_missing_reason():
        pytest.skip(reason)
    server, url = start_connect_server(tmp_path_factory.mktemp("spark-connect"))
    yield url
    server.stop()


@pytest.fixture()
def spark_connect(spark_connect_url: str):
    """A Spark Connect session on that server (a gRPC client: no JVM in this process)."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    session = ConnectSession.builder.remote(spark_connect_url).create()
    yield session
    session.stop()
