"""The Dagster code location: `dagster dev` (workspace.yaml) loads `defs` from here."""

from dagster import Definitions

from .defs.alerting import check_failure_alert_sensor, default_alert_resource
from .defs.automation import publish_after_shard_updates
from .defs.collection_assets import collection_queries
from .defs.extraction_assets import raw_attributes
from .defs.jobs import ALL_JOBS
from .defs.model_assets import clip_model
from .defs.page_assets import landing_pages
from .defs.resources import default_resources
from .defs.scoring_assets import product_attribute_scores
from .defs.sensors import catalog_refresh_sensor, rescore_after_training, weekly_model_retrain
from .defs.vocabulary_assets import curated_vocabulary

# The six steps; each is one asset or a multi-asset of the tables it writes (defs/tables.py).
ASSETS = [raw_attributes, curated_vocabulary, clip_model, product_attribute_scores, collection_queries, landing_pages]


def build_definitions(resources: dict | None = None) -> Definitions:
    """The code location; `resources` replace the environment-configured defaults by key."""
    return Definitions(
        assets=ASSETS,
        jobs=ALL_JOBS,
        sensors=[catalog_refresh_sensor, rescore_after_training, publish_after_shard_updates, check_failure_alert_sensor],
        schedules=[weekly_model_retrain],
        resources=default_resources() | {"alerts": default_alert_resource()} | (resources or {}),
    )


defs = build_definitions()


def asset_code_versions(definitions: Definitions) -> dict[str, str | None]:
    """{asset name: its code_version}, for everything that decides whether a step re-runs
    (e.g. `make run`'s fingerprints). Rule for bumping them: defs/tables.py."""
    return {spec.key.to_user_string(): spec.code_version for spec in definitions.resolve_all_asset_specs()}
