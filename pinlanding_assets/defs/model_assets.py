"""`clip_model`: the dual encoder, trained on the labeled sample of all shards.

The asset is the model registry table `clip_model` (one row per trained version, promoted or
rejected, with the path of its checkpoint under the data home's `models/`). It reads
`catalog_products`, `raw_attributes` and `curated_vocabulary`."""


from dagster import AssetCheckSpec, AssetExecutionContext, Config, MaterializeResult, MetadataValue, multi_asset

from ..core.clip_model import ModelSpec
from ..core.compute import ComputeSettings
from ..core.gates import GateConfig
from ..core.model_fitting import ENCODER_ONLY, PUBLISHED, AssignmentConfig, HeldoutConfig, silver_test_share
from ..core.model_registry import REGISTRY_SCHEMA, REGISTRY_TABLE, ModelRegistry
from ..core.model_release import ModelRelease, ModelSettings, release_model
from ..core.training import TrainingConfig
from .checks import check_results
from .config_from_core import CoreSettings, with_core_settings
from .resources import CatalogResource, DataHomeResource
from .tables import table_spec, written_table_metadata

CODE_VERSION = "3"  # bump when this step's logic (here or in core/model_release.py, clip_model.py, training.py, model_fitting.py, gates.py) changes the model


# The settings the step hands to the core, defined there (defaults and docs): run config
# takes each field by its core name (`ModelSpec.name` as `model_name`).
MODEL_SETTINGS = (
    CoreSettings(ModelSpec, rename={"name": "model_name"}),
    CoreSettings(TrainingConfig, set_by_dagster={"test_share": "silver_share when the catalog lacks labels of the gated keys, else 0 (model_fitting.silver_test_share)"}),
    CoreSettings(AssignmentConfig),
    CoreSettings(GateConfig),
    CoreSettings(HeldoutConfig),
    CoreSettings(ComputeSettings),
)


class ModelConfig(with_core_settings(Config, *MODEL_SETTINGS)):
    """How the encoder is built, trained, thresholded, judged and evaluated."""

    def settings(self, products) -> ModelSettings:
        """The core's settings for a catalog of `products` (whose labels decide the silver test share)."""
        gates, heldout = self.to_core(GateConfig), self.to_core(HeldoutConfig)
        training = self.to_core(TrainingConfig, test_share=silver_test_share(products, gates.gated_keys, heldout))
        return ModelSettings(self.to_core(ModelSpec), training, self.to_core(AssignmentConfig), gates, heldout, self.to_core(ComputeSettings))


@multi_asset(
    name="clip_model",
    pool="training",  # one training at a time (dagster.yaml)
    specs=[
        table_spec(
            REGISTRY_TABLE, group="model", code_version=CODE_VERSION, kinds={"pytorch"}, schema=REGISTRY_SCHEMA,
            deps=["catalog_products", "raw_attributes", "curated_vocabulary"],
            description=(
                "The dual encoder's registry: one row per trained version with its checkpoint (open_clip local-dir "
                "layout under the data home), evaluation and status; only a version that passed its blocking checks "
                "is promoted and scored with, a rejected one says why."
            ),
        )
    ],
    check_specs=[
        AssetCheckSpec("model_beats_prior", asset="clip_model", blocking=True, description="Held-out R@1 of the encoder alone ≥ min_recall_at_1 and ≥ the frequency prior's + min_lift_over_prior; a bad model must not make pages."),
        AssetCheckSpec("heldout_key_accuracy", asset="clip_model", blocking=True, description="Held-out top-1 accuracy of every gated key (product type, color) ≥ min_key_top1."),
        AssetCheckSpec("heldout_key_precision", asset="clip_model", blocking=True, description="Held-out precision of the assigned attributes of every gated key ≥ min_key_precision."),
    ],
)
def clip_model(context: AssetExecutionContext, config: ModelConfig, data_home: DataHomeResource, catalog: CatalogResource) -> MaterializeResult:
    """Train, calibrate, set assignment thresholds and evaluate the dual encoder; the
    checkpoint is saved in open_clip's local-dir layout under the data home. Judged against
    the catalog's labels where it has some, else against held-out teacher labels (silver);
    promoted for scoring only when no blocking check failed (`core.model_registry`)."""
    warehouse = data_home.warehouse
    products = warehouse.read_table("catalog_products")
    # Epoch-by-epoch progress reaches the run log through the instance's python_logs
    # (managed_python_loggers in the shipped dagster.yaml).
    release = release_model(
        products, warehouse.read_table("raw_attributes"), warehouse.read_table("curated_vocabulary"), config.settings(products),
        ModelRegistry(warehouse, data_home.paths.models), catalog.teacher_inputs(), log=context.log,
    )
    fitted, registered = release.fitted, release.registered
    published, encoder = fitted.primary_evaluation(PUBLISHED), fitted.primary_evaluation(ENCODER_ONLY)
    return MaterializeResult(
        asset_key=REGISTRY_TABLE,
        metadata={
            **written_table_metadata(warehouse, [REGISTRY_TABLE])[REGISTRY_TABLE],
            "version": fitted.saved.version,
            "status": registered.status,
            "checkpoint": MetadataValue.path(str(registered.path)),
            "evaluated_against": fitted.primary if fitted.evaluations else "nothing (no held-out truth)",
            "teacher_reads": catalog.teacher_inputs().describe(),
            "labeled_products": release.inputs.labeled.height,
            "split": MetadataValue.json(fitted.split_sizes),
            "heldout_products": published.n_products if published else 0,
            "vocabulary_size": release.inputs.attributes.height,
            "training_seconds": round(fitted.training.seconds, 1),
            "epochs_run": fitted.training.epochs_run,
            "best_epoch": fitted.training.best_epoch,
            # R@1 ranks every key's values together: read it for the encoder alone (the gate's
            # figure); the published scores' text evidence makes some keys near-certain, which
            # decides their cross-key order more than rightness does.
            "heldout_recall@1": encoder.recall.get("recall@1") if encoder else None,
            "heldout_recall@10": published.recall.get("recall@10") if published else None,
            "heldout_map": published.mean_average_precision if published else None,
            "heldout_top1_per_key": MetadataValue.json(published.top1 if published else {}),
            "heldout_assignment_precision_per_key": MetadataValue.json(published.assignment_precision if published else {}),
            "comparison": MetadataValue.json(fitted.comparison()),
            "calibration_prior_weight": fitted.calibration.prior_weight,
            "calibration_evidence_weight": MetadataValue.json(fitted.calibration.evidence_weight),
            "calibration_ablation": MetadataValue.json(fitted.calibration_ablation),
            "thresholds": MetadataValue.json(fitted.thresholds),
            "training_history": MetadataValue.json(fitted.training.history),
            **plot_metadata(release),
        },
        check_results=check_results([gate.as_check() for gate in release.gates]),
    )


def plot_metadata(release: ModelRelease) -> dict:
    """The held-out pictures inline (markdown with an embedded image) and as file paths."""
    if not release.plots:
        return {"plots": "none: no held-out products to draw"}
    metadata = {}
    for plot in release.plots:
        metadata[f"plot/{plot.name}"] = MetadataValue.md(plot.markdown)
        metadata[f"plot/{plot.name}_file"] = MetadataValue.path(str(plot.path))
    return metadata
