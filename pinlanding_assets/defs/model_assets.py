"""`clip_model`: the dual encoder, trained on the labeled sample of all shards."""


import json
import shutil
from datetime import datetime, timezone

import polars as pl
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset

from ..core.clip_model import ModelSpec
from ..core.extraction import SampleSpec, select_sample
from ..core.model_fitting import AssignmentConfig, FittedModel, fit_dual_encoder, training_inputs
from ..core.plots import confusion_png, markdown_image, precision_recall_png
from ..core.training import TrainingConfig
from .resources import DataHomeResource
from .run_logs import core_logs_in_run_log
from .vocabulary_assets import curated_vocabulary


class ModelConfig(Config):
    model_name: str = "pinlanding-tiny"  # open_clip name, "local-dir:<path>" or pinlanding-tiny
    pretrained: str | None = None  # open_clip tag (needs a hub) or checkpoint file
    fuse_title: bool = True
    epochs: int = 8
    batch_size: int = 128
    learning_rate: float = 2e-3
    validation_share: float = 0.15
    patience: int = 2
    min_steps: int = 100  # small samples: at least this many updates (sample catalog: 100 steps of 128)
    augment: bool = True  # random horizontal flips while training
    title_dropout: float = 0.3  # share of products trained image-only in each step
    seed: int = 0
    target_precision: float = 0.95
    max_values_per_key: int = 1
    eval_max_products: int = 3000
    baseline_max_products: int = 3000  # the untrained-model baseline re-encodes products
    min_recall_at_10: float = 0.95  # blocking check
    min_key_top1: float = 0.6  # blocking check: held-out top-1 accuracy of each gated key
    min_key_precision: float = 0.8  # blocking check: held-out assignment precision of each gated key
    gated_keys: list[str] = ["product_type", "color"]


@asset(
    deps=[curated_vocabulary],
    group_name="model",
    check_specs=[
        AssetCheckSpec("heldout_recall_at_10", asset="clip_model", blocking=True, description="Held-out attribute Recall@10 ≥ min_recall_at_10; a bad model must not make pages."),
        AssetCheckSpec("heldout_key_accuracy", asset="clip_model", blocking=True, description="Held-out top-1 accuracy of every gated key (product type, color) ≥ min_key_top1."),
        AssetCheckSpec("heldout_key_precision", asset="clip_model", blocking=True, description="Held-out precision of the assigned attributes of every gated key ≥ min_key_precision."),
    ],
)
def clip_model(context: AssetExecutionContext, config: ModelConfig, data_home: DataHomeResource) -> MaterializeResult:
    """Train, calibrate, set assignment thresholds and evaluate the dual encoder; the
    checkpoint is saved in open_clip's local-dir layout under the data home."""
    warehouse = data_home.warehouse
    vocabulary = warehouse.read_table("curated_vocabulary")
    raw = warehouse.read_table("raw_attributes")
    products = warehouse.read_table("catalog_products")
    # Held-out: products outside the labeled sample that carry catalog labels.
    unseen = products.filter(~pl.col("in_sample"))
    candidates = select_sample(unseen, SampleSpec(share=1.0, min_count=0, max_count=config.eval_max_products, seed=config.seed + 1))
    inputs = training_inputs(products, raw, vocabulary, candidates)
    labeled, heldout, attributes = inputs.labeled, inputs.heldout, inputs.attributes
    context.log.info("labeled %d products, held-out %d, vocabulary %d", labeled.height, heldout.height, attributes.height)

    spec = ModelSpec(name=config.model_name, pretrained=config.pretrained, fuse_title=config.fuse_title)
    training = TrainingConfig(
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        validation_share=config.validation_share,
        patience=config.patience,
        seed=config.seed,
        min_steps=config.min_steps,
        augment=config.augment,
        title_dropout=config.title_dropout,
    )
    staging = data_home.paths.models / "clip_model" / "staging"
    with core_logs_in_run_log(context):  # epoch-by-epoch progress in the run log
        fitted = fit_dual_encoder(labeled, inputs.labels, heldout, inputs.heldout_truth, attributes, spec, training, AssignmentConfig(config.target_precision, config.max_values_per_key), staging, config.baseline_max_products)
    final_dir = data_home.paths.models / "clip_model" / fitted.saved.version
    if final_dir.exists():  # same weights trained again: replace
        shutil.rmtree(final_dir)
    staging.rename(final_dir)
    plots = write_plots(fitted, final_dir / "plots")

    trained = fitted.evaluations["trained"]
    warehouse.replace_table(
        "clip_model",
        pl.DataFrame(
            {
                "version": [fitted.saved.version],
                "path": [str(final_dir)],
                "created_at": [datetime.now(timezone.utc).isoformat()],
                "evaluation": [json.dumps({name: vars(e) for name, e in fitted.evaluations.items()})],
            }
        ),
    )
    recall10 = trained.recall.get("recall@10", 0.0)
    gated = {k: v for k, v in trained.top1.items() if k in config.gated_keys}
    worst_key, worst_acc = min(gated.items(), key=lambda kv: kv[1]) if gated else ("-", 0.0)
    gated_precision = {k: v for k, v in trained.assignment_precision.items() if k in config.gated_keys}
    imprecise_key, worst_precision = min(gated_precision.items(), key=lambda kv: kv[1]) if gated_precision else ("-", 0.0)
    comparison = {name: {**e.recall, **{f"top1/{k}": v for k, v in e.top1.items()}} for name, e in fitted.evaluations.items()}
    return MaterializeResult(
        metadata={
            "version": fitted.saved.version,
            "checkpoint": MetadataValue.path(str(final_dir)),
            "labeled_products": labeled.height,
            "heldout_products": trained.n_products,
            "vocabulary_size": attributes.height,
            "training_seconds": round(fitted.training.seconds, 1),
            "epochs_run": fitted.training.epochs_run,
            "best_epoch": fitted.training.best_epoch,
            "heldout_recall@1": trained.recall.get("recall@1"),
            "heldout_recall@5": trained.recall.get("recall@5"),
            "heldout_recall@10": recall10,
            "heldout_top1_per_key": MetadataValue.json(trained.top1),
            "heldout_assignment_precision_per_key": MetadataValue.json(trained.assignment_precision),
            "comparison": MetadataValue.json(comparison),
            "calibration_prior_weight": fitted.calibration.prior_weight,
            "calibration_title_weight": MetadataValue.json(fitted.calibration.title_weight),
            "calibration_ablation": MetadataValue.json(fitted.calibration_ablation),
            "thresholds": MetadataValue.json(fitted.thresholds),
            "training_history": MetadataValue.json(fitted.training.history),
            **plots,
        },
        check_results=[
            AssetCheckResult(
                check_name="heldout_recall_at_10",
                passed=recall10 >= config.min_recall_at_10,
                severity=AssetCheckSeverity.ERROR,
                metadata={"value": recall10, "threshold": config.min_recall_at_10},
            ),
            AssetCheckResult(
                check_name="heldout_key_accuracy",
                passed=worst_acc >= config.min_key_top1,
                severity=AssetCheckSeverity.ERROR,
                metadata={"value": worst_acc, "worst_key": worst_key, "threshold": config.min_key_top1},
            ),
            AssetCheckResult(
                check_name="heldout_key_precision",
                passed=worst_precision >= config.min_key_precision,
                severity=AssetCheckSeverity.ERROR,
                metadata={"value": worst_precision, "worst_key": imprecise_key, "threshold": config.min_key_precision, "per_key": MetadataValue.json(gated_precision)},
            ),
        ],
    )


def write_plots(fitted: FittedModel, directory) -> dict:
    """PR curves and the confusion summary as PNG files next to the checkpoint, shown inline
    in the asset's metadata (markdown with an embedded image) and as file paths."""
    directory.mkdir(parents=True, exist_ok=True)
    pictures = {
        "precision_recall": precision_recall_png(fitted.heldout_probabilities, fitted.heldout_truth, fitted.space, fitted.thresholds),
        "confusion_summary": confusion_png(fitted.heldout_probabilities, fitted.heldout_truth, fitted.space),
    }
    metadata = {}
    for name, png in pictures.items():
        path = directory / f"{name}.png"
        path.write_bytes(png)
        metadata[f"plot/{name}"] = MetadataValue.md(markdown_image(png, name))
        metadata[f"plot/{name}_file"] = MetadataValue.path(str(path))
    return metadata
