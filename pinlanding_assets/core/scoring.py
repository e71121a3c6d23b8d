"""From similarities to calibrated scores and assigned attributes.

Calibration (ours): within each key, probability = softmax over the key's values of
`scale * cosine + prior_weight * log(frequency share)`. The encoder, trained on a sample in
which rare attributes are few, tends to over-rank them; the log-frequency prior corrects
that, and its weight is fitted on validation (weight 0 = no correction, kept as ablation).

Assignment: per key, the top values whose probability reaches a threshold chosen on
validation so that assignments reach a target precision, at most `max_values_per_key`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

from .clip_model import embed_attributes, embed_products
from .training import AttributeSpace

PRIOR_WEIGHT_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class Calibration:
    scale: float
    prior_weight: float
    log_prior: tuple[float, ...]

    def probabilities(self, sim: np.ndarray, key_slices: dict[str, slice]) -> np.ndarray:
        logits = self.scale * sim + self.prior_weight * np.asarray(self.log_prior)[None, :]
        probs = np.empty_like(logits, dtype=np.float32)
        for sl in key_slices.values():
            part = logits[:, sl] - logits[:, sl].max(axis=1, keepdims=True)
            exp = np.exp(part)
            probs[:, sl] = exp / exp.sum(axis=1, keepdims=True)
        return probs

    def to_dict(self) -> dict:
        return asdict(self) | {"log_prior": list(self.log_prior)}


def _top1_accuracy(probs: np.ndarray, truth: np.ndarray, key_slices: dict[str, slice]) -> float:
    accs = []
    for sl in key_slices.values():
        has = truth[:, sl].any(axis=1)
        if has.any():
            accs.append(truth[has, sl][np.arange(int(has.sum())), probs[has, sl].argmax(axis=1)].mean())
    return float(np.mean(accs)) if accs else 0.0


def fit_calibration(sim: np.ndarray, truth: np.ndarray, key_slices: dict[str, slice], scale: float, log_prior: np.ndarray) -> tuple[Calibration, dict[str, float]]:
    """The prior weight with the best validation top-1 accuracy; the accuracy of every
    weight tried is returned as the ablation."""
    ablation = {}
    best: Calibration | None = None
    best_acc = -1.0
    for weight in PRIOR_WEIGHT_GRID:
        candidate = Calibration(scale, weight, tuple(float(x) for x in log_prior))
        acc = _top1_accuracy(candidate.probabilities(sim, key_slices), truth, key_slices)
        ablation[f"prior_weight={weight}"] = acc
        if acc > best_acc + 1e-9:
            best, best_acc = candidate, acc
    assert best is not None
    return best, ablation


def choose_thresholds(probs: np.ndarray, truth: np.ndarray, key_slices: dict[str, slice], target_precision: float) -> dict[str, float]:
    """Per key, the lowest top-1 probability threshold whose assignments (top value, prob ≥
    threshold) reach `target_precision` on validation; when none does, the threshold of the
    most precise top decile."""
    thresholds = {}
    for key, sl in key_slices.items():
        has = truth[:, sl].any(axis=1)
        if not has.any():
            thresholds[key] = 0.5
            continue
        top = probs[has, sl].max(axis=1)
        correct = truth[has, sl][np.arange(int(has.sum())), probs[has, sl].argmax(axis=1)]
        order = np.argsort(-top, kind="stable")
        precision_at = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
        ok = np.flatnonzero(precision_at >= target_precision)
        if len(ok):
            thresholds[key] = float(top[order][ok.max()])
        else:
            thresholds[key] = float(np.quantile(top, 0.9))
    return thresholds


def assign(probs: np.ndarray, key_slices: dict[str, slice], thresholds: dict[str, float], max_values_per_key: int, assignable: np.ndarray | None = None) -> np.ndarray:
    """Top values per key at or above the key's threshold; columns not `assignable` (the
    ABSENT pseudo-values) can win a key but are never assigned."""
    assigned = np.zeros(probs.shape, dtype=bool)
    rows = np.arange(probs.shape[0])[:, None]
    for key, sl in key_slices.items():
        part = probs[:, sl]
        k = min(max_values_per_key, part.shape[1])
        top = np.argsort(-part, axis=1, kind="stable")[:, :k]
        chosen = np.zeros_like(part, dtype=bool)
        chosen[rows, top] = True
        assigned[:, sl] = chosen & (part >= thresholds.get(key, 1.0))
    if assignable is not None:
        assigned &= assignable[None, :]
    return assigned


SCORE_SCHEMA = {
    "product_id": pl.String,
    "key": pl.String,
    "value": pl.String,
    "score": pl.Float32,
    "probability": pl.Float32,
    "assigned": pl.Boolean,
}


def scores_frame(product_ids: list[str], attributes: pl.DataFrame, sim: np.ndarray, probs: np.ndarray, assigned: np.ndarray) -> pl.DataFrame:
    """Every product x every attribute, long format."""
    n, a = sim.shape
    return pl.DataFrame(
        {
            "product_id": np.repeat(np.asarray(product_ids, dtype=object), a),
            "key": np.tile(attributes.get_column("key").to_numpy(), n),
            "value": np.tile(attributes.get_column("value").to_numpy(), n),
            "score": sim.astype(np.float32).ravel(),
            "probability": probs.astype(np.float32).ravel(),
            "assigned": assigned.ravel(),
        },
        schema=SCORE_SCHEMA,
    )


# -- scoring a shard with the saved model ---------------------------------------------

EMBEDDING_SCHEMA = {
    "model_version": pl.String,
    "product_id": pl.String,
    "image_hash": pl.String,
    "text_hash": pl.String,
    "embedding": pl.List(pl.Float32),
}


@dataclass
class ShardScores:
    scores: pl.DataFrame  # SCORE_SCHEMA
    new_embeddings: pl.DataFrame  # EMBEDDING_SCHEMA, only those encoded this time
    encoded: int
    reused: int
    encode_seconds: float


def reusable_embeddings(products: pl.DataFrame, cached: pl.DataFrame, model_version: str) -> pl.DataFrame:
    """Cached embeddings still valid for these products: same model, image and text."""
    if cached.is_empty():
        return pl.DataFrame(schema=EMBEDDING_SCHEMA)
    return cached.filter(pl.col("model_version") == model_version).join(
        products.select("product_id", "image_hash", "text_hash"), on=["product_id", "image_hash", "text_hash"], how="semi"
    )


def score_products(encoder, model_extra: dict, model_version: str, products: pl.DataFrame, cached: pl.DataFrame, batch_size: int = 512, progress=None) -> ShardScores:
    """Score every product against every attribute of the model's vocabulary, encoding only
    products whose (image, text) has no cached embedding for this model version."""
    space = AttributeSpace(pl.DataFrame(model_extra["attributes"]).select("key", "value", "frequency"))
    attributes, key_slices = space.attributes, space.key_slices
    calibration = Calibration(**{**model_extra["calibration"], "log_prior": tuple(model_extra["calibration"]["log_prior"])})
    reuse = reusable_embeddings(products, cached, model_version)
    todo = products.join(reuse.select("product_id"), on="product_id", how="anti")
    started = time.perf_counter()
    fresh = embed_products(encoder, todo.get_column("image_path").to_list(), todo.get_column("title").to_list(), batch_size, progress)
    encode_seconds = time.perf_counter() - started
    new_embeddings = pl.DataFrame(
        {
            "model_version": [model_version] * todo.height,
            "product_id": todo.get_column("product_id"),
            "image_hash": todo.get_column("image_hash"),
            "text_hash": todo.get_column("text_hash"),
            "embedding": fresh.numpy().astype(np.float32).tolist() if todo.height else [],
        },
        schema=EMBEDDING_SCHEMA,
    )
    all_embeddings = pl.concat([reuse, new_embeddings])
    order = products.select("product_id").join(all_embeddings, on="product_id", how="left", maintain_order="left")
    matrix = np.asarray(order.get_column("embedding").to_list(), dtype=np.float32).reshape(products.height, -1)
    attr = embed_attributes(encoder, attributes).numpy()
    sim = matrix @ attr.T if products.height else np.zeros((0, attributes.height), dtype=np.float32)
    probs = calibration.probabilities(sim, key_slices)
    assigned = assign(probs, key_slices, model_extra["thresholds"], model_extra["max_values_per_key"], space.assignable)
    return ShardScores(
        scores=scores_frame(products.get_column("product_id").to_list(), attributes, sim, probs, assigned),
        new_embeddings=new_embeddings,
        encoded=todo.height,
        reused=reuse.height,
        encode_seconds=encode_seconds,
    )

