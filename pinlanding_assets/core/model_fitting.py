"""The `clip_model` stage: train on the labeled sample, calibrate and set thresholds on its
validation split, evaluate on held-out products, save the checkpoint.

Held-out products are catalog products outside the labeled sample; their catalog labels are
never read by training, only by evaluation.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import torch

from .clip_model import ModelSpec, SavedModel, attribute_table_phrases, build_encoder, save_encoder
from .evaluation import attribute_precision_recall, assignment_precision_per_key, catalog_label_attributes, recall_at_k, top1_accuracy_per_key
from .scoring import Calibration, assign, choose_thresholds, first_title_mentions, fit_calibration
from .training import (
    AttributeSpace,
    ProductBatchData,
    TrainingConfig,
    TrainingReport,
    add_absent_values,
    prepare_products,
    similarities,
    split_train_validation,
    train_encoder,
)
from .vocabulary import canonical_labels, kept_attributes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AssignmentConfig:
    target_precision: float = 0.95
    max_values_per_key: int = 1


@dataclass
class Evaluation:
    """Figures on one product set for one scoring method."""

    n_products: int
    recall: dict[str, float]
    top1: dict[str, float]
    assignment_precision: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingInputs:
    """What `fit_dual_encoder` reads, derived from the stored stage outputs."""

    labeled: pl.DataFrame  # products with extracted labels (the sample)
    labels: pl.DataFrame  # product_id, key, value in the curated vocabulary
    heldout: pl.DataFrame  # products outside the sample with a catalog label in the vocabulary
    heldout_truth: pl.DataFrame  # product_id, key, value from the catalog's own labels
    attributes: pl.DataFrame  # key, value, frequency: the curated vocabulary


def training_inputs(products: pl.DataFrame, raw_attributes: pl.DataFrame, vocabulary: pl.DataFrame, heldout_candidates: pl.DataFrame) -> TrainingInputs:
    """Labeled products with their canonical labels, and the held-out candidates that carry
    at least one catalog label the vocabulary knows, with those labels as truth."""
    attributes = kept_attributes(vocabulary)
    labels = canonical_labels(raw_attributes, vocabulary)
    heldout_truth = catalog_label_attributes(heldout_candidates).join(attributes.select("key", "value"), on=["key", "value"], how="semi")
    return TrainingInputs(
        labeled=products.join(labels.select("product_id").unique(), on="product_id", how="semi"),
        labels=labels,
        heldout=heldout_candidates.join(heldout_truth.select("product_id").unique(), on="product_id", how="semi"),
        heldout_truth=heldout_truth,
        attributes=attributes,
    )


@dataclass
class FittedModel:
    saved: SavedModel
    training: TrainingReport
    calibration: Calibration
    calibration_ablation: dict[str, float]
    thresholds: dict[str, float]
    # "trained", "trained_without_title_evidence", "trained_uncalibrated" (neither prior nor
    # title evidence), "untrained", "frequency_prior"
    evaluations: dict[str, Evaluation]
    per_attribute: pl.DataFrame
    heldout_probabilities: np.ndarray
    heldout_truth: np.ndarray
    space: AttributeSpace


def evaluate_scores(probs: np.ndarray, truth: np.ndarray, space: AttributeSpace, assigned: np.ndarray | None = None) -> Evaluation:
    return Evaluation(
        n_products=int(truth.any(axis=1).sum()),
        recall=recall_at_k(probs, truth, rankable=space.assignable),
        top1=top1_accuracy_per_key(probs, truth, space.key_slices),
        assignment_precision=assignment_precision_per_key(assigned, truth, space.key_slices) if assigned is not None else {},
    )


def fit_dual_encoder(
    labeled: pl.DataFrame,
    labels: pl.DataFrame,
    heldout: pl.DataFrame,
    heldout_truth: pl.DataFrame,
    attributes: pl.DataFrame,
    spec: ModelSpec,
    training: TrainingConfig,
    assignment: AssignmentConfig,
    out_dir: Path,
    baseline_max_products: int | None = 5000,
) -> FittedModel:
    """labeled/heldout: product frames (product_id, title, image_path); labels/heldout_truth:
    (product_id, key, value) in the curated vocabulary; attributes: (key, value, frequency).
    The untrained-model baseline costs a full encoding pass, so it is measured on at most
    `baseline_max_products` held-out products (its Evaluation says how many)."""
    if attributes.is_empty():
        raise ValueError("the curated vocabulary is empty: nothing to train on")
    attributes, labels = add_absent_values(attributes, labels, labeled.get_column("product_id").to_list())
    space = AttributeSpace(attributes)
    torch.manual_seed(training.seed)
    encoder = build_encoder(spec, seed=training.seed)
    untrained = copy.deepcopy(encoder)
    data = prepare_products(encoder, labeled, labels, space)
    train_idx, val_idx = split_train_validation(data.product_ids, training.validation_share, training.seed)
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise ValueError(f"labeled sample of {len(data.product_ids)} products is too small to split for validation")
    train_data, val_data = _subset(data, train_idx), _subset(data, val_idx)
    log.info("training on %d products, validating on %d, %d attributes", len(train_idx), len(val_idx), len(space))
    report = train_encoder(encoder, train_data, val_data, space, training)

    tokens = encoder.tokenize(attribute_table_phrases(space.attributes))
    scale = float(encoder.logit_scale.detach())
    val_sim = similarities(encoder, val_data, tokens)
    val_mentions = first_title_mentions(val_data.titles, space.attributes)
    calibration, ablation = fit_calibration(val_sim, val_data.truth, space.key_slices, scale, space.log_prior(), val_mentions)
    thresholds = choose_thresholds(calibration.probabilities(val_sim, space.key_slices, val_mentions), val_data.truth, space.key_slices, assignment.target_precision)

    started = time.perf_counter()
    held = prepare_products(encoder, heldout, heldout_truth, space)
    sim = similarities(encoder, held, tokens)
    mentions = first_title_mentions(held.titles, space.attributes)
    probs = calibration.probabilities(sim, space.key_slices, mentions)
    without_title_evidence = calibration.probabilities(sim, space.key_slices)
    assigned = assign(probs, space.key_slices, thresholds, assignment.max_values_per_key, space.assignable)
    uncalibrated = Calibration(scale, 0.0, calibration.log_prior).probabilities(sim, space.key_slices)
    baseline_idx = np.arange(len(held.product_ids))[: baseline_max_products]
    untrained_sim = similarities(untrained, _subset(held, baseline_idx), untrained.tokenize(attribute_table_phrases(space.attributes)))
    prior = np.broadcast_to(space.log_prior()[None, :], probs.shape)
    evaluations = {
        "trained": evaluate_scores(probs, held.truth, space, assigned),
        "trained_without_title_evidence": evaluate_scores(without_title_evidence, held.truth, space),
        "trained_uncalibrated": evaluate_scores(uncalibrated, held.truth, space),
        "untrained": evaluate_scores(untrained_sim, held.truth[baseline_idx], space),
        "frequency_prior": evaluate_scores(prior, held.truth, space),
    }
    log.info("evaluated %d held-out products in %.1fs", len(held.product_ids), time.perf_counter() - started)

    saved = save_encoder(
        encoder,
        out_dir,
        {
            "attributes": space.attributes.to_dicts(),
            "calibration": calibration.to_dict(),
            "thresholds": thresholds,
            "max_values_per_key": assignment.max_values_per_key,
        },
    )
    return FittedModel(
        saved=saved,
        training=report,
        calibration=calibration,
        calibration_ablation=ablation,
        thresholds=thresholds,
        evaluations=evaluations,
        per_attribute=attribute_precision_recall(assigned, held.truth, space.attributes),
        heldout_probabilities=probs,
        heldout_truth=held.truth,
        space=space,
    )


def _subset(data: ProductBatchData, idx: np.ndarray) -> ProductBatchData:
    index = torch.from_numpy(idx)
    return ProductBatchData(
        product_ids=[data.product_ids[i] for i in idx],
        images=data.images[index],
        title_tokens=data.title_tokens[index],
        truth=data.truth[idx],
        titles=[data.titles[i] for i in idx],
    )
