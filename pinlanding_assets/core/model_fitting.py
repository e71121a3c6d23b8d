"""The `clip_model` stage: train on the teacher-labeled sample, calibrate and set thresholds
on its validation split, evaluate on held-out products, save the checkpoint.

Two kinds of truth judge a model (shared/notes/pinlanding-method.md):

* **catalog labels**: products outside the labeled sample, against the catalog's own
  `label_<key>` columns, which neither the teacher nor training ever read. A discovered
  vocabulary names values its own way ("shoe" where the catalog says "Casual Shoes"), so
  labels are mapped onto it under a rule (`evaluation.expand_to_vocabulary`): "lenient"
  (gates: no label-fitted mapping), "mapped" (also the majority label of each value in the
  labeled sample) and "strict" are all reported;
* **silver labels**: when the catalog has no labels, a share of the labeled sample
  (`TrainingConfig.test_share`) is held out of training and calibration, and the model is
  judged against the teacher's answers on it.

Each is measured for the published scores (encoder + calibration + text evidence), the
encoder with its calibration but no text evidence, the encoder alone (neither: what the
gate of the model itself reads; a calibration leaning on the frequency prior would make
even an untrained encoder look better than the prior), the untrained encoder and the
frequency prior.
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

from .catalog import TeacherInputs
from .clip_model import ModelSpec, SavedModel, attribute_table_phrases, build_encoder, save_encoder
from .compute import CPU_FP32, Compute
from .evaluation import (
    CATALOG_LABELS,
    SILVER_LABELS,
    GroundTruth,
    assignment_counts_per_key,
    attribute_precision_recall,
    catalog_label_attributes,
    expand_to_vocabulary,
    majority_mapping,
    mean_average_precision,
    recall_at_k,
    top1_accuracy_per_key,
)
from .scoring import Calibration, assign, choose_thresholds, evidence_index, evidence_phrases, fit_calibration, product_evidence
from .extraction import SampleSpec, select_sample
from .training import (
    ABSENT,
    AttributeSpace,
    ProductBatchData,
    TrainingConfig,
    TrainingReport,
    add_absent_values,
    prepare_products,
    similarities,
    split_sample,
    train_encoder,
)
from .vocabulary import canonical_labels, kept_attributes

log = logging.getLogger(__name__)

# Scoring methods compared on every truth set.
PUBLISHED = "trained"  # encoder + calibration + text evidence: what pages use
WITHOUT_EVIDENCE = "trained_without_evidence"  # encoder + calibration
ENCODER_ONLY = "trained_uncalibrated"  # the encoder alone
METHODS = (PUBLISHED, WITHOUT_EVIDENCE, ENCODER_ONLY, "untrained", "frequency_prior")


@dataclass(frozen=True)
class AssignmentConfig:
    target_precision: float = 0.95
    max_values_per_key: int = 1


@dataclass
class Evaluation:
    """Figures on one product set, one truth and one scoring method."""

    n_products: int
    recall: dict[str, float]
    top1: dict[str, float]
    mean_average_precision: float = float("nan")
    # top-1 over the products whose label the vocabulary names (misses of labels it lacks
    # left out): the protocol of the figures published before content-first evaluation
    top1_known: dict[str, float] = field(default_factory=dict)
    labeled_per_key: dict[str, int] = field(default_factory=dict)
    assignment_precision: dict[str, float] = field(default_factory=dict)
    assignment_checked: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingInputs:
    """What `fit_dual_encoder` reads, derived from the stored stage outputs."""

    labeled: pl.DataFrame  # products with teacher labels (the sample)
    labels: pl.DataFrame  # product_id, key, value in the curated vocabulary (the teacher's)
    heldout: pl.DataFrame  # products outside the sample that carry catalog labels (may be empty)
    heldout_labels: pl.DataFrame  # product_id, key, value: their catalog labels, normalized
    attributes: pl.DataFrame  # key, value, frequency: the curated vocabulary
    evidence_phrases: list[tuple[str, str, str]]  # spellings of the vocabulary, for text evidence
    label_mapping: pl.DataFrame  # evaluation only: vocabulary value -> its majority catalog label in the sample
    weak_labels: pl.DataFrame  # product_id, key: teacher answers read on the pixels (train the encoder, never vouch for a threshold)


@dataclass(frozen=True)
class HeldoutConfig:
    """Which products a model is judged on."""

    silver_share: float = 0.15  # of the labeled sample, held out as silver truth when the catalog lacks labels
    eval_max_products: int = 3000  # catalog products outside the sample evaluated against their labels, at most
    baseline_max_products: int = 3000  # the untrained-model baseline re-encodes products


def heldout_candidates(products: pl.DataFrame, max_products: int | None, seed: int) -> pl.DataFrame:
    """Catalog products outside the labeled sample, at most `max_products`, drawn by a
    seeded hash (another seed than the sample's, so not the sample's neighbours)."""
    unseen = products.filter(~pl.col("in_sample")) if "in_sample" in products.columns else products
    return select_sample(unseen, SampleSpec(share=1.0, min_count=0, max_count=max_products, seed=seed + 1))


def has_labels_for(products: pl.DataFrame, keys: tuple[str, ...] | list[str]) -> bool:
    """Whether the catalog carries a label for every one of `keys` (on some product)."""
    return all(f"label_{k}" in products.columns and products.get_column(f"label_{k}").drop_nulls().len() > 0 for k in keys)


def silver_test_share(products: pl.DataFrame, gated_keys: tuple[str, ...] | list[str], config: HeldoutConfig) -> float:
    """`TrainingConfig.test_share`: none when the catalog has labels of every gated key (the
    model is judged on them), else `silver_share` of the labeled sample."""
    return 0.0 if has_labels_for(products, gated_keys) else config.silver_share


def training_inputs(products: pl.DataFrame, raw_attributes: pl.DataFrame, vocabulary: pl.DataFrame, heldout_candidates: pl.DataFrame) -> TrainingInputs:
    """Labeled products with their canonical labels, and the held-out candidates that carry
    a catalog label, with their labels (all of them: a label no vocabulary value names is a
    miss, not a product to leave out)."""
    labels = canonical_labels(raw_attributes, vocabulary)
    heldout_labels = catalog_label_attributes(heldout_candidates)
    labeled = products.join(labels.select("product_id").unique(), on="product_id", how="semi")
    return TrainingInputs(
        labeled=labeled,
        labels=labels,
        heldout=heldout_candidates.join(heldout_labels.select("product_id").unique(), on="product_id", how="semi"),
        heldout_labels=heldout_labels,
        attributes=kept_attributes(vocabulary),
        evidence_phrases=evidence_phrases(vocabulary),
        label_mapping=majority_mapping(labels, catalog_label_attributes(labeled)),
        weak_labels=raw_attributes.filter(pl.col("source") == "pixels").select("product_id", "key").unique() if "source" in raw_attributes.columns else pl.DataFrame(schema={"product_id": pl.String, "key": pl.String}),
    )


def ground_truth(product_ids: list[str], labels: pl.DataFrame, space: AttributeSpace, source: str, rule: str, mapping: pl.DataFrame | None = None) -> GroundTruth:
    """Truth matrix of `labels` (product_id, key, value) mapped onto the space's vocabulary."""
    mapped = expand_to_vocabulary(labels, space.attributes, rule, mapping)
    row_of = {pid: i for i, pid in enumerate(product_ids)}
    labeled = {}
    for key in sorted(labels.get_column("key").unique().to_list()):
        mask = np.zeros(len(product_ids), dtype=bool)
        ids = labels.filter(pl.col("key") == key).get_column("product_id").to_list()
        mask[[row_of[p] for p in ids if p in row_of]] = True
        if mask.any():
            labeled[key] = mask
    return GroundTruth(space.multi_hot(product_ids, mapped), labeled, source, rule)


@dataclass
class FittedModel:
    saved: SavedModel
    training: TrainingReport
    calibration: Calibration
    calibration_ablation: dict[str, float]
    thresholds: dict[str, float]
    # truth set name ("catalog labels (lenient)", "catalog labels (strict)", "teacher labels
    # (silver)") -> method (METHODS) -> Evaluation
    evaluations: dict[str, dict[str, Evaluation]]
    per_attribute: pl.DataFrame
    heldout_probabilities: np.ndarray  # published scores on the primary truth set
    heldout_truth: GroundTruth
    space: AttributeSpace
    split_sizes: dict[str, int] = field(default_factory=dict)

    @property
    def primary(self) -> str:
        """The truth set quality is first judged on: lenient catalog labels when there are
        some, else silver labels."""
        return next(iter(self.evaluations))

    def primary_evaluation(self, method: str) -> Evaluation | None:
        """The figures of `method` on the primary truth set (None without held-out truth)."""
        return self.evaluations[self.primary].get(method) if self.evaluations else None

    def evaluation_record(self) -> dict:
        """Every evaluation as plain values: truth set -> method -> figures."""
        return {truth: {method: vars(e) for method, e in methods.items()} for truth, methods in self.evaluations.items()}

    def comparison(self) -> dict:
        """The methods side by side on each truth set: recall@k, mAP, top-1 per key, products."""
        return {
            truth: {m: {**e.recall, "map": e.mean_average_precision, **{f"top1/{k}": v for k, v in e.top1.items()}, "n": e.n_products} for m, e in methods.items()}
            for truth, methods in self.evaluations.items()
        }


def evaluate_scores(probs: np.ndarray, truth: GroundTruth, space: AttributeSpace, assigned: np.ndarray | None = None) -> Evaluation:
    """Figures of one scoring method. A labeled key the vocabulary lacks altogether (the
    teacher never named it) has top-1 0: every product labeled for it is a miss."""
    has = truth.any_label
    counts = assignment_counts_per_key(assigned, truth.truth, space.key_slices, truth.labeled) if assigned is not None else {}
    top1 = top1_accuracy_per_key(probs, truth.truth, {k: sl for k, sl in space.key_slices.items() if k in truth.labeled}, truth.labeled)
    return Evaluation(
        n_products=int(has.sum()),
        recall=recall_at_k(probs, truth.truth, rankable=space.assignable, has_label=has),
        top1={key: top1.get(key, 0.0) for key in truth.labeled},
        top1_known=top1_accuracy_per_key(probs, truth.truth, {k: sl for k, sl in space.key_slices.items() if k in truth.labeled}),
        mean_average_precision=mean_average_precision(probs, truth.truth, space.key_slices, truth.labeled, space.assignable),
        labeled_per_key=truth.counts(),
        assignment_precision={k: right / checked for k, (right, checked) in counts.items()},
        assignment_checked={k: checked for k, (_, checked) in counts.items()},
    )


@dataclass(frozen=True)
class _Scored:
    """Every scoring method's probabilities on one product set."""

    data: ProductBatchData
    methods: dict[str, np.ndarray]
    assigned: np.ndarray
    baseline_rows: np.ndarray  # rows the untrained baseline was measured on


def fit_dual_encoder(
    inputs: TrainingInputs,
    spec: ModelSpec,
    training: TrainingConfig,
    assignment: AssignmentConfig,
    out_dir: Path,
    baseline_max_products: int | None = 5000,
    teacher_inputs: TeacherInputs = TeacherInputs(),
    compute: Compute = CPU_FP32,
) -> FittedModel:
    """Train, calibrate, set thresholds, evaluate and save (see the module docstring). The
    untrained-model baseline costs a full encoding pass, so it is measured on at most
    `baseline_max_products` products of each truth set (its Evaluation says how many)."""
    if inputs.attributes.is_empty():
        raise ValueError("the curated vocabulary is empty: nothing to train on")
    attributes, labels = add_absent_values(inputs.attributes, inputs.labels, inputs.labeled.get_column("product_id").to_list())
    space = AttributeSpace(attributes)
    torch.manual_seed(training.seed)
    encoder = build_encoder(spec, seed=training.seed, texts=inputs.labeled.get_column("title").to_list() + attribute_table_phrases(space.attributes)).place_on(compute)
    untrained = copy.deepcopy(encoder)
    data = prepare_products(encoder, inputs.labeled, labels, space)
    train_idx, val_idx, test_idx = split_sample(data.product_ids, training.validation_share, training.seed, training.test_share)
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise ValueError(f"labeled sample of {len(data.product_ids)} products is too small to split for validation")
    train_data, val_data = _subset(data, train_idx), _subset(data, val_idx)
    log.info("training on %d products, validating on %d, silver test %d, %d attributes", len(train_idx), len(val_idx), len(test_idx), len(space))
    report = train_encoder(encoder, train_data, val_data, space, training)

    tokens = encoder.tokenize(attribute_table_phrases(space.attributes))
    scale = float(encoder.logit_scale.detach())
    index = evidence_index(inputs.evidence_phrases)
    val_sim = similarities(encoder, val_data, tokens)
    val_evidence = product_evidence(val_data.texts, index, space.attributes)
    calibration, ablation = fit_calibration(val_sim, val_data.truth, space.key_slices, scale, space.log_prior(), val_evidence)
    untrusted = {key: _marked(val_data.product_ids, inputs.weak_labels.filter(pl.col("key") == key)) for key in inputs.weak_labels.get_column("key").unique().to_list()}
    thresholds = choose_thresholds(calibration.probabilities(val_sim, space.key_slices, val_evidence), val_data.truth, space.key_slices, assignment.target_precision, untrusted)

    def score_all(products: ProductBatchData) -> _Scored:
        sim = similarities(encoder, products, tokens)
        probs = calibration.probabilities(sim, space.key_slices, product_evidence(products.texts, index, space.attributes))
        rows = np.arange(len(products.product_ids))[:baseline_max_products]
        untrained_sim = similarities(untrained, _subset(products, rows), untrained.tokenize(attribute_table_phrases(space.attributes)))
        return _Scored(
            products,
            {
                PUBLISHED: probs,
                WITHOUT_EVIDENCE: calibration.probabilities(sim, space.key_slices),
                ENCODER_ONLY: Calibration(scale, 0.0, calibration.log_prior).probabilities(sim, space.key_slices),
                "untrained": untrained_sim,
                "frequency_prior": np.broadcast_to(space.log_prior()[None, :], probs.shape),
            },
            assign(probs, space.key_slices, thresholds, assignment.max_values_per_key, space.assignable),
            rows,
        )

    started = time.perf_counter()
    truth_sets: list[tuple[str, _Scored, GroundTruth]] = []
    if inputs.heldout.height:
        held = prepare_products(encoder, inputs.heldout, inputs.heldout_labels.head(0), space)
        scored = score_all(held)
        for rule in ("lenient", "mapped", "strict"):
            truth = ground_truth(held.product_ids, inputs.heldout_labels, space, CATALOG_LABELS, rule, inputs.label_mapping)
            truth_sets.append((f"{CATALOG_LABELS} ({rule})", scored, truth))
    if len(test_idx):
        test = _subset(data, test_idx)
        silver = labels.filter(pl.col("product_id").is_in(test.product_ids)).filter(pl.col("value") != ABSENT)
        truth_sets.append((SILVER_LABELS, score_all(test), ground_truth(test.product_ids, silver, space, SILVER_LABELS, "strict")))
    evaluations = {name: _evaluate_methods(scored, truth, space) for name, scored, truth in truth_sets}
    log.info("evaluated %s in %.1fs", ", ".join(f"{n} (n={e[PUBLISHED].n_products})" for n, e in evaluations.items()) or "nothing", time.perf_counter() - started)

    saved = save_encoder(
        encoder,
        out_dir,
        {
            "attributes": space.attributes.to_dicts(),
            "calibration": calibration.to_dict(),
            "thresholds": thresholds,
            "max_values_per_key": assignment.max_values_per_key,
            "evidence_phrases": [list(p) for p in inputs.evidence_phrases],
            "teacher_columns": list(teacher_inputs.columns),
            "split": {"validation_share": training.validation_share, "test_share": training.test_share, "seed": training.seed},
        },
    )
    _, primary_scored, primary_truth = truth_sets[0] if truth_sets else ("", None, None)
    return FittedModel(
        saved=saved,
        training=report,
        calibration=calibration,
        calibration_ablation=ablation,
        thresholds=thresholds,
        evaluations=evaluations,
        per_attribute=attribute_precision_recall(primary_scored.assigned, primary_truth.truth, space.attributes) if primary_scored else pl.DataFrame(),
        heldout_probabilities=primary_scored.methods[PUBLISHED] if primary_scored else np.zeros((0, len(space)), dtype=np.float32),
        heldout_truth=primary_truth if primary_truth else GroundTruth(np.zeros((0, len(space)), dtype=bool), {}, SILVER_LABELS, "strict"),
        space=space,
        split_sizes={"train": len(train_idx), "validation": len(val_idx), "test": len(test_idx), "heldout": inputs.heldout.height},
    )


def _marked(product_ids: list[str], rows: pl.DataFrame) -> np.ndarray:
    """bool [N]: which of `product_ids` appear in `rows` (a frame with product_id)."""
    marked = set(rows.get_column("product_id").to_list())
    return np.array([pid in marked for pid in product_ids], dtype=bool)


def _evaluate_methods(scored: _Scored, truth: GroundTruth, space: AttributeSpace) -> dict[str, Evaluation]:
    out = {}
    for method, probs in scored.methods.items():
        if method == "untrained":
            out[method] = evaluate_scores(probs, truth.subset(scored.baseline_rows), space)
        else:
            out[method] = evaluate_scores(probs, truth, space, scored.assigned if method == PUBLISHED else None)
    return out


def _subset(data: ProductBatchData, idx: np.ndarray) -> ProductBatchData:
    index = torch.from_numpy(np.asarray(idx, dtype=np.int64))
    return ProductBatchData(
        product_ids=[data.product_ids[i] for i in idx],
        images=data.images[index],
        title_tokens=data.title_tokens[index],
        truth=data.truth[idx],
        texts=[data.texts[i] for i in idx],
    )
