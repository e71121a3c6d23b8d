"""`clip_model`: the dual encoder, trained on the labeled sample of all shards.

The asset is the model registry table `clip_model` (one row per trained version, promoted or
rejected, with the path of its checkpoint under the data home's `models/`). It reads
`catalog_products`, `raw_attributes` and `curated_vocabulary`."""


from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetExecutionContext, Config, MaterializeResult, MetadataValue, multi_asset

from ..core.clip_model import ModelSpec
from ..core.gates import GateConfig, GateResult, model_gates
from ..core.model_fitting import ENCODER_ONLY, PUBLISHED, AssignmentConfig, FittedModel, fit_dual_encoder, has_labels_for, heldout_candidates, training_inputs
from ..core.model_registry import REGISTRY_SCHEMA, REGISTRY_TABLE, ModelRegistry
from ..core.plots import confusion_png, markdown_image, precision_recall_png
from ..core.training import TrainingConfig
from .config_from_core import CoreSettings, with_core_settings
from .resources import CatalogResource, DataHomeResource
from .tables import table_spec, written_table_metadata

CODE_VERSION = "1"  # bump when this step's logic (here or in core/clip_model.py, training.py, model_fitting.py, gates.py) changes the model


# The settings the step hands to the core, defined there (defaults and docs): run config
# takes each field by its core name (`ModelSpec.name` as `model_name`).
MODEL_SETTINGS = (
    CoreSettings(ModelSpec, rename={"name": "model_name"}),
    CoreSettings(TrainingConfig, set_by_dagster={"test_share": "silver_share when the catalog lacks labels of the gated keys, else 0"}),
    CoreSettings(AssignmentConfig),
    CoreSettings(GateConfig),
)


class ModelConfig(with_core_settings(Config, *MODEL_SETTINGS)):
    silver_share: float = 0.15  # of the labeled sample, held out as silver truth when the catalog lacks labels
    eval_max_products: int = 3000
    baseline_max_products: int = 3000  # the untrained-model baseline re-encodes products

    def test_share(self, products) -> float:
        """The silver test share of `training`: none when the catalog has labels of the gated keys."""
        return 0.0 if has_labels_for(products, self.gated_keys) else self.silver_share


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
    vocabulary = warehouse.read_table("curated_vocabulary")
    raw = warehouse.read_table("raw_attributes")
    products = warehouse.read_table("catalog_products")
    inputs = training_inputs(products, raw, vocabulary, heldout_candidates(products, config.eval_max_products, config.seed))
    silver = config.test_share(products)
    context.log.info("labeled %d products, held-out with catalog labels %d, vocabulary %d; silver test share %.2f", inputs.labeled.height, inputs.heldout.height, inputs.attributes.height, silver)
    training = config.to_core(TrainingConfig, test_share=silver)
    registry = ModelRegistry(warehouse, data_home.paths.models)
    # Epoch-by-epoch progress reaches the run log through the instance's python_logs
    # (managed_python_loggers in the shipped dagster.yaml).
    fitted = fit_dual_encoder(inputs, config.to_core(ModelSpec), training, config.to_core(AssignmentConfig), registry.staging_dir(), config.baseline_max_products, catalog.teacher_inputs())
    gates = model_gates(fitted, config.to_core(GateConfig))
    evaluation = {truth: {m: vars(e) for m, e in methods.items()} for truth, methods in fitted.evaluations.items()}
    blocking = [g for g in gates if g.blocks]
    # A candidate that failed a blocking gate is never scored with: only promoted models are.
    if blocking:
        registered = registry.reject(fitted.saved, evaluation, "; ".join(f"{g.name}: {g.description}" for g in blocking))
        context.log.error("model %s rejected (%s); scoring keeps using the last promoted model", fitted.saved.version, registered.reason)
    else:
        registered = registry.promote(fitted.saved, evaluation)
    plots = write_plots(fitted, registered.path / "plots")
    primary = fitted.evaluations.get(fitted.primary, {}) if fitted.evaluations else {}
    published, encoder = primary.get(PUBLISHED), primary.get(ENCODER_ONLY)
    comparison = {
        truth: {m: {**e.recall, "map": e.mean_average_precision, **{f"top1/{k}": v for k, v in e.top1.items()}, "n": e.n_products} for m, e in methods.items()}
        for truth, methods in fitted.evaluations.items()
    }
    return MaterializeResult(
        asset_key=REGISTRY_TABLE,
        metadata={
            **written_table_metadata(warehouse, [REGISTRY_TABLE])[REGISTRY_TABLE],
            "version": fitted.saved.version,
            "status": registered.status,
            "checkpoint": MetadataValue.path(str(registered.path)),
            "evaluated_against": fitted.primary if fitted.evaluations else "nothing (no held-out truth)",
            "teacher_reads": catalog.teacher_inputs().describe(),
            "labeled_products": inputs.labeled.height,
            "split": MetadataValue.json(fitted.split_sizes),
            "heldout_products": published.n_products if published else 0,
            "vocabulary_size": inputs.attributes.height,
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
            "comparison": MetadataValue.json(comparison),
            "calibration_prior_weight": fitted.calibration.prior_weight,
            "calibration_evidence_weight": MetadataValue.json(fitted.calibration.evidence_weight),
            "calibration_ablation": MetadataValue.json(fitted.calibration_ablation),
            "thresholds": MetadataValue.json(fitted.thresholds),
            "training_history": MetadataValue.json(fitted.training.history),
            **plots,
        },
        check_results=[gate_check_result(gate) for gate in gates],
    )


def gate_check_result(gate: GateResult) -> AssetCheckResult:
    """A core gate as a Dagster check: a failed blocking gate is an ERROR (it stops the
    steps after it), a failed non-blocking one (not enough evidence) a WARN."""
    return AssetCheckResult(
        check_name=gate.name,
        passed=gate.passed,
        severity=AssetCheckSeverity.ERROR if gate.blocking else AssetCheckSeverity.WARN,
        description=gate.description,
        metadata={"value": gate.value, "threshold": gate.threshold, **{k: MetadataValue.json(v) if isinstance(v, dict) else v for k, v in gate.metadata.items()}},
    )


def write_plots(fitted: FittedModel, directory) -> dict:
    """PR curves and the confusion summary as PNG files next to the checkpoint, shown inline
    in the asset's metadata (markdown with an embedded image) and as file paths."""
    if not len(fitted.heldout_probabilities):
        return {"plots": "none: no held-out products to draw"}
    directory.mkdir(parents=True, exist_ok=True)
    pictures = {
        "precision_recall": precision_recall_png(fitted.heldout_probabilities, fitted.heldout_truth.truth, fitted.space, fitted.thresholds),
        "confusion_summary": confusion_png(fitted.heldout_probabilities, fitted.heldout_truth.truth, fitted.space),
    }
    metadata = {}
    for name, png in pictures.items():
        path = directory / f"{name}.png"
        path.write_bytes(png)
        metadata[f"plot/{name}"] = MetadataValue.md(markdown_image(png, name))
        metadata[f"plot/{name}_file"] = MetadataValue.path(str(path))
    return metadata
