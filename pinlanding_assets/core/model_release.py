"""Training a candidate and releasing it, or not: the `clip_model` step.

The model is judged on the catalog's labeled products outside the sample (at most
`HeldoutConfig.eval_max_products`, `model_fitting.heldout_candidates`), else on silver
truth held out of the sample (`silver_test_share`). The candidate is trained into a staging
folder of its own; it is promoted (and scoring uses it) only when no blocking gate failed
(`gates.model_gates`), else rejected with the failed gates as its reason
(`model_registry.py`). The held-out pictures are written next to its checkpoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from .catalog import TeacherInputs
from .clip_model import ModelSpec
from .compute import ComputeSettings, resolve_compute
from .gates import GateConfig, GateResult, model_gates
from .model_fitting import AssignmentConfig, FittedModel, HeldoutConfig, TrainingInputs, fit_dual_encoder, heldout_candidates, training_inputs
from .model_registry import ModelRegistry, RegisteredModel
from .plots import confusion_png, markdown_image, precision_recall_png
from .retraining import record_training_sample
from .training import TrainingConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSettings:
    """Everything the step hands to the core (`training.test_share`: `silver_test_share`)."""

    spec: ModelSpec
    training: TrainingConfig
    assignment: AssignmentConfig
    gates: GateConfig
    heldout: HeldoutConfig
    compute: ComputeSettings = ComputeSettings()


@dataclass(frozen=True)
class PlotFile:
    name: str
    path: Path
    markdown: str  # the picture inline: markdown with an embedded PNG


@dataclass(frozen=True)
class ModelRelease:
    inputs: TrainingInputs
    fitted: FittedModel
    gates: list[GateResult]
    registered: RegisteredModel
    plots: list[PlotFile]  # none when there were no held-out products to draw


def release_model(
    products: pl.DataFrame,
    raw_attributes: pl.DataFrame,
    vocabulary: pl.DataFrame,
    settings: ModelSettings,
    registry: ModelRegistry,
    teacher_inputs: TeacherInputs,
    log: logging.Logger = log,
) -> ModelRelease:
    """Train, calibrate, set thresholds, evaluate and gate a candidate, then promote or
    reject it (see the module docstring). `products`, `raw_attributes`, `vocabulary`: the
    stored `catalog_products`, `raw_attributes` and `curated_vocabulary`."""
    candidates = heldout_candidates(products, settings.heldout.eval_max_products, settings.training.seed)
    inputs = training_inputs(products, raw_attributes, vocabulary, candidates)
    log.info(
        "labeled %d products, held-out with catalog labels %d, vocabulary %d; silver test share %.2f",
        inputs.labeled.height, inputs.heldout.height, inputs.attributes.height, settings.training.test_share,
    )
    compute = resolve_compute(settings.compute)
    log.info("training on %s", compute.describe())
    fitted = fit_dual_encoder(inputs, settings.spec, settings.training, settings.assignment, registry.staging_dir(), settings.heldout.baseline_max_products, teacher_inputs, compute)
    record_training_sample(fitted.saved.directory, raw_attributes)  # what a refresh compares with (`retraining.py`)
    gates = model_gates(fitted, settings.gates)
    registered = register_candidate(registry, fitted, gates)
    if registered.status == "rejected":
        log.error("model %s rejected (%s); scoring keeps using the last promoted model", fitted.saved.version, registered.reason)
    return ModelRelease(inputs, fitted, gates, registered, write_heldout_plots(fitted, registered.path / "plots"))


def register_candidate(registry: ModelRegistry, fitted: FittedModel, gates: list[GateResult]) -> RegisteredModel:
    """Promote the candidate when no gate blocks; else reject it, the blocking gates as the
    reason. A rejected candidate is never scored with: scoring reads promoted models only."""
    blocking = [g for g in gates if g.blocks]
    if blocking:
        return registry.reject(fitted.saved, fitted.evaluation_record(), "; ".join(f"{g.name}: {g.description}" for g in blocking))
    return registry.promote(fitted.saved, fitted.evaluation_record())


def write_heldout_plots(fitted: FittedModel, directory: Path) -> list[PlotFile]:
    """PR curves and the confusion summary of the held-out products as PNG files in
    `directory`; none without held-out products."""
    if not len(fitted.heldout_probabilities):
        return []
    directory.mkdir(parents=True, exist_ok=True)
    pictures = {
        "precision_recall": precision_recall_png(fitted.heldout_probabilities, fitted.heldout_truth.truth, fitted.space, fitted.thresholds),
        "confusion_summary": confusion_png(fitted.heldout_probabilities, fitted.heldout_truth.truth, fitted.space),
    }
    plots = []
    for name, png in pictures.items():
        path = directory / f"{name}.png"
        path.write_bytes(png)
        plots.append(PlotFile(name, path, markdown_image(png, name)))
    return plots
