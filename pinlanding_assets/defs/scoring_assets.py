"""`product_attribute_scores`: every product of a shard x every vocabulary attribute.

One step, two tables of the shard (a `@multi_asset`, see `defs/tables.py`): the scores, and
`product_embeddings`, the cache of product embeddings per model version that the step also
reads back (unchanged products are not re-encoded; a self-read is not drawn as a dependency).
"""


import os
import sys
from pathlib import Path

import polars as pl
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, multi_asset
from dagster_pyspark import LazyPySparkResource

from ..core.clip_model import load_encoder
from ..core.gates import catalog_label_domain_of, check_assignments
from ..core.model_registry import ModelRegistry
from ..core.scoring import EMBEDDING_SCHEMA, SCORE_TABLE_SCHEMA, score_products
from ..core.spark_scoring import spark_embedder
from .model_assets import gate_check_result
from .partitions import shard_check, shard_partitions
from .resources import DataHomeResource
from .tables import table_spec, written_table_metadata

CODE_VERSION = "1"  # bump when this step's logic (here or in core/scoring.py, spark_scoring.py, gates.py) changes its tables
COMPUTED_BY = {"pytorch", "spark"}  # the encoder runs in torch, in this process or on Spark (config `engine`)


class ScoringConfig(Config):
    batch_size: int = 512
    engine: str = "local"  # "local": encode in this process; "spark": mapInPandas on the spark resource
    spark_task_threads: int = 1  # torch threads per Spark task (Spark runs one task per core)
    min_assignment_precision: float = 0.8  # check: on the shard's catalog labels, else its silver test products
    min_checked: int = 20  # fewer checked assignments: the check warns instead of judging (core/gates.py)


@multi_asset(
    name="product_attribute_scores",
    partitions_def=shard_partitions,
    specs=[
        table_spec(
            "product_attribute_scores", group="model", code_version=CODE_VERSION, kinds=COMPUTED_BY, schema=SCORE_TABLE_SCHEMA,
            deps=["catalog_products", "product_embeddings", "clip_model", "raw_attributes", "curated_vocabulary"],
            description=(
                "Raw and calibrated scores of every (product, attribute) of the shard under the current promoted model, "
                "with the assigned flags; replaced only when the shard's precision check passes (else the last good "
                "scores stay)."
            ),
        ),
        table_spec(
            "product_embeddings", group="model", code_version=CODE_VERSION, kinds=COMPUTED_BY, schema=EMBEDDING_SCHEMA,
            deps=["catalog_products", "clip_model"],
            description=(
                "Cache of product embeddings per model version, keyed by product and its image and text hashes; "
                "scoring a shard adds its products' new embeddings and reuses the rest."
            ),
        ),
    ],
    check_specs=[shard_check("assignment_precision", "product_attribute_scores", "Precision of assigned attributes on products with catalog labels ≥ min_assignment_precision.", blocking=True)],
)
def product_attribute_scores(context: AssetExecutionContext, config: ScoringConfig, data_home: DataHomeResource, spark: LazyPySparkResource):
    """Score the shard's products with the promoted model; product embeddings are cached so
    unchanged products are not re-encoded."""
    shard = context.partition_key
    warehouse = data_home.warehouse
    model = ModelRegistry(warehouse, data_home.paths.models).current()  # never a rejected candidate
    version = model.version
    encoder, extra = load_encoder(model.path)
    products = warehouse.read_table("catalog_products", "shard = ?", [shard])
    cached = warehouse.read("SELECT * FROM product_embeddings WHERE model_version = ?", [version]) if warehouse.has_table("product_embeddings") else pl.DataFrame()

    def progress(done: int, total: int) -> None:
        context.log.info("shard %s: encoded %d/%d products", shard, done, total)

    if config.engine not in ("local", "spark"):
        raise ValueError(f"engine must be 'local' or 'spark', got {config.engine!r}")
    if config.engine == "spark":
        # Python workers must run this environment (torch, open_clip, pandas); takes effect
        # when this step creates the session (the lazy resource creates it on first use).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    embedder = spark_embedder(spark.spark_session, model.path, version, config.batch_size, config.spark_task_threads) if config.engine == "spark" else None
    result = score_products(encoder, extra, version, products, cached, config.batch_size, progress, embedder)
    context.log.info("shard %s: encoded %d products (%.1f/s), reused %d cached embeddings", shard, result.encoded, result.products_per_second, result.reused)
    warehouse.upsert("product_embeddings", result.new_embeddings, ["model_version", "product_id"])
    scores = result.scores.with_columns(pl.lit(shard).alias("shard"), pl.lit(version).alias("model_version"))
    assigned = scores.filter(pl.col("assigned"))
    check = check_assignments(
        assigned.select("product_id", "key", "value"), products, warehouse.read_table("raw_attributes", "shard = ?", [shard]),
        warehouse.read_table("curated_vocabulary"), extra.get("split", {}), catalog_label_domain_of(warehouse),
    )
    gate = check.gate(config.min_assignment_precision, config.min_checked)
    # Scores that fail the gate never reach the pages: the shard keeps its last good rows.
    if gate.blocks:
        context.log.error("shard %s: scores not published (%s); its last good scores stay", shard, gate.description)
    else:
        warehouse.replace_rows("product_attribute_scores", scores, "shard", [shard])
    tables = written_table_metadata(warehouse, ["product_attribute_scores", "product_embeddings"], shard)
    # In the order of the data flow (Dagster requires it): the scores are made from the embeddings.
    yield MaterializeResult(
        asset_key="product_embeddings",
        metadata={**tables["product_embeddings"], "shard": shard, "model_version": version, "encoded": result.encoded, "reused": result.reused},
    )
    yield MaterializeResult(
        asset_key="product_attribute_scores",
        metadata={
            **tables["product_attribute_scores"],
            "shard": shard,
            "model_version": version,
            "products": products.height,
            "encoded": result.encoded,
            "reused_embeddings": result.reused,
            "engine": config.engine,
            "products_per_second": round(result.products_per_second, 1),
            "encode_seconds": round(result.encode_seconds, 2),
            "score_rows": scores.height,
            "assigned_rows": assigned.height,
            "assigned_per_key": MetadataValue.json(dict(assigned.group_by("key").len().sort("key").iter_rows())),
            "assignment_precision": check.precision if check.checked else None,
            "assignment_checked_against": check.source,
            "published": not gate.blocks,
        },
        check_results=[gate_check_result(gate)],
    )
