"""`product_attribute_scores`: every product of a shard x every vocabulary attribute.

One step, two tables of the shard (a `@multi_asset`, see `defs/tables.py`): the scores, and
`product_embeddings`, the cache of product embeddings per model version that the step also
reads back (unchanged products are not re-encoded; a self-read is not drawn as a dependency).
"""


from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, multi_asset
from dagster_pyspark import LazyPySparkResource

from ..core.compute import ComputeSettings
from ..core.gates import ShardGateConfig
from ..core.scoring import EMBEDDING_SCHEMA, SCORE_TABLE_SCHEMA, ScoringSettings
from ..core.shard_scoring import score_shard
from .checks import check_result
from .config_from_core import CoreSettings, with_core_settings
from .partitions import shard_check, shard_partitions
from .resources import DataHomeResource
from .tables import table_spec, written_table_metadata

CODE_VERSION = "3"  # bump when this step's logic (here or in core/shard_scoring.py, scoring.py, spark_scoring.py, gates.py) changes its tables
COMPUTED_BY = {"pytorch", "spark"}  # the encoder runs in torch, in this process or on Spark (config `engine`)


# The settings the step hands to the core, defined there (defaults and docs).
SCORING_SETTINGS = (CoreSettings(ScoringSettings), CoreSettings(ShardGateConfig), CoreSettings(ComputeSettings))


class ScoringConfig(with_core_settings(Config, *SCORING_SETTINGS)):
    """How the shard is encoded, and when its scores may reach the pages."""


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
    scoring = score_shard(
        warehouse, data_home.paths.models, shard, config.to_core(ScoringSettings), config.to_core(ShardGateConfig),
        spark_session=lambda: spark.spark_session, log=context.log, compute=config.to_core(ComputeSettings),
        model_inputs=data_home.paths.model_inputs,
    )
    scored, check = scoring.scored, scoring.check
    tables = written_table_metadata(warehouse, ["product_attribute_scores", "product_embeddings"], shard)
    # In the order of the data flow (Dagster requires it): the scores are made from the embeddings.
    yield MaterializeResult(
        asset_key="product_embeddings",
        metadata={**tables["product_embeddings"], "shard": shard, "model_version": scoring.model.version, "encoded": scored.encoded, "reused": scored.reused},
    )
    yield MaterializeResult(
        asset_key="product_attribute_scores",
        metadata={
            **tables["product_attribute_scores"],
            "shard": shard,
            "model_version": scoring.model.version,
            "products": scoring.products,
            "encoded": scored.encoded,
            "reused_embeddings": scored.reused,
            "engine": config.engine,
            "products_per_second": round(scored.products_per_second, 1),
            "encode_seconds": round(scored.encode_seconds, 2),
            "score_rows": scoring.scores.height,
            "assigned_rows": scoring.assigned.height,
            "assigned_per_key": MetadataValue.json(scoring.assigned_per_key()),
            "assignment_precision": check.precision,
            "assignment_checked_against": check.source,
            "published": scoring.published,
        },
        check_results=[check_result(scoring.gate.as_check())],
    )
