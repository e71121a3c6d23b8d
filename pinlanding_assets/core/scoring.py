"""From similarities to calibrated scores and assigned attributes.

Calibration (ours): within each key, probability = softmax over the key's values of
`scale * cosine + prior_weight * log(frequency share) + evidence_weight[key] * evidence`.
The encoder, trained on a sample in which rare attributes are few, tends to over-rank them;
the log-frequency prior corrects that, and its weight is fitted on validation (weight 0 = no
correction, kept as ablation). `evidence` is 1 for the value of a key that the product's own
text names, read by the offline teacher's rule (`extraction.text_attributes`: the title's
last-named product type and first-named colour, gender, ...; then the category and the
description) over the curated vocabulary and its merged spellings. The offline teacher costs
nothing, so this evidence reaches every product, not only the labeled sample: the encoder's
job is then to fill in what the text does not say, and to rank. Its weight per key is fitted
on validation too (0 = ignore the text; every weight tried is in the ablation).

The colour the teacher reads on the pixels of a product whose text names none is evidence
too, but its weight is not fitted: on validation it is its own truth, so any weight would
look perfect (and put colours that agree with the catalog 4 times in 10 on pages at full
confidence). Its weight is the teacher's own, label-free estimate of what its pixel namer
is worth (`extraction.PixelColors.evidence_weight`, ~4 logits): enough to help the encoder
choose, never enough to make a colour certain; assignment thresholds are fitted on labels
the teacher read from text, so pixel-only colours reach pages only when the encoder agrees.

Assignment: per key, the top values whose probability reaches a threshold chosen on
validation so that assignments reach a target precision, at most `max_values_per_key`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from .catalog import TeacherInputs
from .clip_model import DualEncoder, embed_attributes, embed_products
from .evaluation import top1_accuracy_per_key
from .extraction import PIXEL_COLOR, PIXEL_WEIGHT, text_attributes
from .model_inputs import ModelInputs
from .lexicon import ATTRIBUTE_PHRASES
from .text_rules import BrandPrefixes, PhraseIndex
from .training import ABSENT, AttributeSpace, mean_top1_accuracy

PRIOR_WEIGHT_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
EVIDENCE_WEIGHT_GRID = (0.0, 1.0, 2.0, 4.0, 6.0, 10.0, 20.0)  # logit units; cosine logits span ~0-100


def evidence_phrases(vocabulary: pl.DataFrame) -> list[tuple[str, str, str]]:
    """(key, phrase, canonical value) for every spelling that names a kept vocabulary value:
    the canonical value, each raw value merged into it, and each lexicon phrase whose value
    is one of those ("gents" for men, "navy" for navy blue)."""
    kept = vocabulary.filter(pl.col("status") == "kept")
    rows = {(k, c, c) for k, c in kept.select("key", "canonical").unique().iter_rows()}
    rows |= {(k, v, c) for k, v, c in kept.select("key", "value", "canonical").iter_rows()}
    canonical_of = {(k, v): c for k, v, c in rows}
    for key, phrases in ATTRIBUTE_PHRASES.items():
        for phrase, value in phrases.items():
            if (key, value) in canonical_of:
                rows.add((key, phrase, canonical_of[(key, value)]))
    return sorted(rows)


def evidence_index(phrases: Sequence[Sequence[str]]) -> PhraseIndex:
    index = PhraseIndex()
    for key, phrase, value in phrases:
        index.add(key, phrase, value)
    return index


def evidence_texts(products: pl.DataFrame, inputs: TeacherInputs) -> list[dict]:
    """What the teacher reads, per product: title, description, the merchant's category only
    when the teacher may read it, and the pixel colour (with its weight) where the text
    names none."""
    columns = ["title", "description", PIXEL_COLOR, PIXEL_WEIGHT] + (["category"] if "category" in inputs.columns else [])
    present = [c for c in columns if c in products.columns]
    return products.select(present).to_dicts()


@dataclass(frozen=True)
class ProductEvidence:
    """What a product's own content says, over the vocabulary: `text` [N, A] is 1 where its
    text names the attribute (weighted per key by the calibration); `pixels` [N, A] holds
    logits added as they are, the pixel colour's weight where the text names no colour."""

    text: np.ndarray
    pixels: np.ndarray

    def subset(self, rows: np.ndarray) -> "ProductEvidence":
        return ProductEvidence(self.text[rows], self.pixels[rows])


def product_evidence(texts: Sequence[dict], index: PhraseIndex, attributes: pl.DataFrame) -> ProductEvidence:
    """The evidence of each product's text (one value per key, by the teacher's reading rule,
    brand prefixes learned from these titles as the teacher learns them from a shard's) and
    pixel colour; ABSENT pseudo-values are never named."""
    column_of = {(k, v): i for i, (k, v) in enumerate(attributes.select("key", "value").iter_rows()) if v != ABSENT}
    text = np.zeros((len(texts), attributes.height), dtype=np.float32)
    pixels = np.zeros((len(texts), attributes.height), dtype=np.float32)
    brands = BrandPrefixes.learn((product.get("title") for product in texts), index)
    for row, product in enumerate(texts):
        named = text_attributes(index, product, brands)
        for key, (value, _) in named.items():
            column = column_of.get((key, value))
            if column is not None:
                text[row, column] = 1.0
        if "color" not in named and product.get(PIXEL_COLOR) and product.get(PIXEL_WEIGHT):
            column = column_of.get(("color", index.find(product[PIXEL_COLOR], keys=["color"]).get("color")))
            if column is not None:
                pixels[row, column] = float(product[PIXEL_WEIGHT])
    return ProductEvidence(text, pixels)


@dataclass(frozen=True)
class Calibration:
    scale: float
    prior_weight: float
    log_prior: tuple[float, ...]
    evidence_weight: dict[str, float] = field(default_factory=dict)  # per key; missing = 0

    def probabilities(self, sim: np.ndarray, key_slices: dict[str, slice], evidence: ProductEvidence | None = None) -> np.ndarray:
        """Per-key softmax of the calibrated logits, in float64: with strong text evidence the
        top values come within 1e-8 of 1, and float32 would round them all to 1.0 and lose
        their order (ranking metrics); `evidence` from `product_evidence` (None: the
        product's content is not used)."""
        logits = self.scale * np.asarray(sim, dtype=np.float64) + self.prior_weight * np.asarray(self.log_prior)[None, :]
        if evidence is not None:
            logits += evidence.pixels
            for key, sl in key_slices.items():
                if self.evidence_weight.get(key, 0.0):
                    logits[:, sl] += self.evidence_weight[key] * evidence.text[:, sl]
        probs = np.empty_like(logits, dtype=np.float64)
        for sl in key_slices.values():
            part = logits[:, sl] - logits[:, sl].max(axis=1, keepdims=True)
            exp = np.exp(part)
            probs[:, sl] = exp / exp.sum(axis=1, keepdims=True)
        return probs

    def to_dict(self) -> dict:
        return asdict(self) | {"log_prior": list(self.log_prior), "evidence_weight": dict(self.evidence_weight)}


def fit_calibration(
    sim: np.ndarray,
    truth: np.ndarray,
    key_slices: dict[str, slice],
    scale: float,
    log_prior: np.ndarray,
    evidence: ProductEvidence | None = None,
) -> tuple[Calibration, dict[str, float]]:
    """The prior weight with the best validation top-1 accuracy (mean over keys), then, when
    text `evidence` is given, per key the evidence weight with the best validation top-1 of
    that key (the largest on ties: where validation cannot tell weights apart, the text has
    already decided every product it names, and a larger weight keeps it deciding on
    products whose encoder scores are less sure). Returns the calibration and the validation accuracy of
    every weight tried (the ablation)."""
    ablation = {}
    best: Calibration | None = None
    best_acc = -1.0
    for weight in PRIOR_WEIGHT_GRID:
        candidate = Calibration(scale, weight, tuple(float(x) for x in log_prior))
        acc = mean_top1_accuracy(candidate.probabilities(sim, key_slices), truth, key_slices)
        ablation[f"prior_weight={weight}"] = acc
        if acc > best_acc + 1e-9:
            best, best_acc = candidate, acc
    assert best is not None
    if evidence is None:
        return best, ablation
    evidence_weight = {}
    for key, sl in key_slices.items():
        key_best, key_best_acc = 0.0, -1.0
        for weight in EVIDENCE_WEIGHT_GRID:
            probs = Calibration(scale, best.prior_weight, best.log_prior, {key: weight}).probabilities(sim, key_slices, evidence)
            acc = top1_accuracy_per_key(probs, truth, {key: sl}).get(key)
            if acc is None:
                break
            ablation[f"evidence_weight[{key}]={weight}"] = acc
            if acc >= key_best_acc - 1e-9:
                key_best, key_best_acc = weight, acc
        if key_best:
            evidence_weight[key] = key_best
    calibrated = Calibration(scale, best.prior_weight, best.log_prior, evidence_weight)
    ablation["fitted"] = mean_top1_accuracy(calibrated.probabilities(sim, key_slices, evidence), truth, key_slices)
    return calibrated, ablation


def choose_thresholds(probs: np.ndarray, truth: np.ndarray, key_slices: dict[str, slice], target_precision: float, untrusted: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """Per key, the lowest top-1 probability threshold whose assignments (top value, prob ≥
    threshold) reach `target_precision` on validation; when none does, the threshold of the
    most precise top decile. `untrusted[key]` marks products whose truth for the key cannot
    vouch for a threshold (the teacher read it on the pixels: the encoder learnt to imitate
    exactly that answer, so it would look right however wrong it is)."""
    thresholds = {}
    for key, sl in key_slices.items():
        has = truth[:, sl].any(axis=1)
        if untrusted is not None and key in untrusted:
            has &= ~untrusted[key]
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
    "score": pl.Float32,  # cosine similarity of the product and attribute embeddings
    "probability": pl.Float32,  # calibrated, with the product's own text and pixels as evidence
    "encoder_probability": pl.Float32,  # calibrated from the towers alone (image + title), no evidence
    "assigned": pl.Boolean,
}
# product_attribute_scores as stored: the scores of one shard under one model version.
SCORE_TABLE_SCHEMA = SCORE_SCHEMA | {"shard": pl.String, "model_version": pl.String}


@dataclass(frozen=True)
class ProductScores:
    """Every product x every attribute, [N, A] each (see SCORE_SCHEMA). `encoder_probability`
    is what the towers say without the text reading: where the two agree a product is a
    clear example of the attribute, which is how pages rank it (`matching.py`)."""

    similarity: np.ndarray
    probability: np.ndarray
    encoder_probability: np.ndarray
    assigned: np.ndarray


def scores_frame(product_ids: list[str], attributes: pl.DataFrame, scores: ProductScores) -> pl.DataFrame:
    """Every product x every attribute, long format (built with polars gathers: a 44k
    catalog x 300 attributes is 13M rows)."""
    n, a = scores.similarity.shape
    product_rows = pl.Series(np.repeat(np.arange(n, dtype=np.int64), a))
    attribute_rows = pl.Series(np.tile(np.arange(a, dtype=np.int64), n))
    return pl.DataFrame(
        {
            "product_id": pl.Series(product_ids, dtype=pl.String).gather(product_rows),
            "key": attributes.get_column("key").cast(pl.String).gather(attribute_rows),
            "value": attributes.get_column("value").cast(pl.String).gather(attribute_rows),
            "score": scores.similarity.astype(np.float32).ravel(),
            "probability": scores.probability.astype(np.float32).ravel(),
            "encoder_probability": scores.encoder_probability.astype(np.float32).ravel(),
            "assigned": scores.assigned.ravel(),
        },
        schema=SCORE_SCHEMA,
    )


# -- scoring a shard with the saved model ---------------------------------------------

SCORING_ENGINES = ("local", "spark")


@dataclass(frozen=True)
class ScoringSettings:
    """How a shard's products are encoded for scoring."""

    batch_size: int = 512  # products per encoding batch (in process) or per Spark partition
    engine: str = "local"  # "local": encode in this process; "spark": mapInPandas on the spark resource
    spark_task_threads: int = 1  # torch threads per Spark task (Spark runs one task per core)
    # In process, read the towers' inputs from the data home's stores (`model-inputs/`:
    # decoded images and title tokens, prepared at ingest or by the first scoring) instead of
    # decoding every image and tokenizing every title again (`model_inputs.py`).
    keep_model_inputs: bool = True


EMBEDDING_SCHEMA = {
    "model_version": pl.String,
    "product_id": pl.String,
    "image_hash": pl.String,
    "text_hash": pl.String,
    "embedding": pl.List(pl.Float32),
}

# How products are turned into embeddings: (image paths, titles, progress) -> [N, D] array.
# In process (`local_embedder`) or on Spark executors (spark_scoring.spark_embedder).
Embedder = Callable[[list[str], list[str], Callable[[int, int], None] | None], np.ndarray]


def local_embedder(encoder: DualEncoder, batch_size: int = ScoringSettings.batch_size, model_inputs: Path | None = None) -> Embedder:
    """In-process encoding; with `model_inputs` (the data home's folder), decoded images and
    title tokens are read from its stores, and what is missing there is stored
    (`model_inputs.ModelInputs`)."""
    stores = ModelInputs(model_inputs, encoder.image_size, encoder.tokenizer.context_length) if model_inputs is not None else None

    def embed(image_paths: list[str], titles: list[str], progress=None) -> np.ndarray:
        if stores is None:
            return embed_products(encoder, image_paths, titles, batch_size, progress).numpy()
        return embed_products(encoder, image_paths, titles, batch_size, progress, stores.images.load, stores.titles.bpe).numpy()

    return embed


@dataclass
class ShardScores:
    scores: pl.DataFrame  # SCORE_SCHEMA
    new_embeddings: pl.DataFrame  # EMBEDDING_SCHEMA, only those encoded this time
    encoded: int
    reused: int
    encode_seconds: float
    score_seconds: float = 0.0  # similarities, calibration, assignment, long frame

    @property
    def products_per_second(self) -> float:
        """Encoding throughput of the products encoded this time (0 when all were reused)."""
        return self.encoded / self.encode_seconds if self.encoded and self.encode_seconds > 0 else 0.0


def reusable_embeddings(products: pl.DataFrame, cached: pl.DataFrame, model_version: str) -> pl.DataFrame:
    """Cached embeddings still valid for these products: same model, image and text."""
    if cached.is_empty():
        return pl.DataFrame(schema=EMBEDDING_SCHEMA)
    return cached.filter(pl.col("model_version") == model_version).join(
        products.select("product_id", "image_hash", "text_hash"), on=["product_id", "image_hash", "text_hash"], how="semi"
    ).unique("product_id", keep="last", maintain_order=True)


@dataclass(frozen=True)
class ScoringModel:
    """What scoring needs from a saved model: the attribute space, the attribute
    embeddings, the calibration and the assignment rule."""

    version: str
    space: AttributeSpace
    attribute_embeddings: np.ndarray  # [A, D]
    calibration: Calibration
    thresholds: dict[str, float]
    max_values_per_key: int
    evidence: PhraseIndex  # what a product's text names (see `product_evidence`)
    teacher_inputs: TeacherInputs

    @classmethod
    def from_saved(cls, encoder: DualEncoder, model_extra: dict, version: str) -> "ScoringModel":
        space = AttributeSpace(pl.DataFrame(model_extra["attributes"]).select("key", "value", "frequency"))
        calibration = Calibration(**{**model_extra["calibration"], "log_prior": tuple(model_extra["calibration"]["log_prior"])})
        # Checkpoints without text evidence (older ones) score from the encoder alone.
        phrases = model_extra.get("evidence_phrases", [])
        inputs = TeacherInputs(tuple(model_extra.get("teacher_columns", TeacherInputs.columns)))
        return cls(version, space, embed_attributes(encoder, space.attributes).numpy(), calibration, dict(model_extra["thresholds"]), int(model_extra["max_values_per_key"]), evidence_index(phrases), inputs)

    def score(self, embeddings: np.ndarray, products: pl.DataFrame) -> ProductScores:
        """The scores of `products`, in the order of `embeddings`, with their text columns."""
        sim = embeddings @ self.attribute_embeddings.T if len(embeddings) else np.zeros((0, len(self.space)), dtype=np.float32)
        evidence = product_evidence(evidence_texts(products, self.teacher_inputs), self.evidence, self.space.attributes)
        probs = self.calibration.probabilities(sim, self.space.key_slices, evidence)
        assigned = assign(probs, self.space.key_slices, self.thresholds, self.max_values_per_key, self.space.assignable)
        return ProductScores(sim, probs, self.calibration.probabilities(sim, self.space.key_slices), assigned)


def score_products(encoder, model_extra: dict, model_version: str, products: pl.DataFrame, cached: pl.DataFrame, batch_size: int = ScoringSettings.batch_size, progress=None, embedder: Embedder | None = None) -> ShardScores:
    """Score every product against every attribute of the model's vocabulary, encoding only
    products whose (image, text) has no cached embedding for this model version.
    `embedder` defaults to in-process batched encoding with `encoder`."""
    model = ScoringModel.from_saved(encoder, model_extra, model_version)
    embed = embedder or local_embedder(encoder, batch_size)
    reuse = reusable_embeddings(products, cached, model_version)
    todo = products.join(reuse.select("product_id"), on="product_id", how="anti")
    started = time.perf_counter()
    fresh = embed(todo.get_column("image_path").to_list(), todo.get_column("title").to_list(), progress) if todo.height else np.zeros((0, model.attribute_embeddings.shape[1]), dtype=np.float32)
    encode_seconds = time.perf_counter() - started
    new_embeddings = pl.DataFrame(
        {
            "model_version": [model_version] * todo.height,
            "product_id": todo.get_column("product_id"),
            "image_hash": todo.get_column("image_hash"),
            "text_hash": todo.get_column("text_hash"),
            "embedding": pl.Series(fresh.astype(np.float32)).cast(pl.List(pl.Float32)) if todo.height else [],
        },
        schema=EMBEDDING_SCHEMA,
    )
    started = time.perf_counter()
    all_embeddings = pl.concat([reuse, new_embeddings])
    order = products.select("product_id").join(all_embeddings, on="product_id", how="left", maintain_order="left")
    dim = model.attribute_embeddings.shape[1]
    matrix = order.get_column("embedding").cast(pl.Array(pl.Float32, dim)).to_numpy().astype(np.float32, copy=False) if products.height else np.zeros((0, dim), dtype=np.float32)
    scores = scores_frame(products.get_column("product_id").to_list(), model.space.attributes, model.score(matrix, products))
    return ShardScores(
        scores=scores,
        new_embeddings=new_embeddings,
        encoded=todo.height,
        reused=reuse.height,
        encode_seconds=encode_seconds,
        score_seconds=time.perf_counter() - started,
    )
