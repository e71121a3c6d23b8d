"""When the model must be trained again: the cost of a refresh follows the change.

A promoted model records the teacher's answers it was trained on (`training_sample.parquet`
in its checkpoint folder: one digest per labeled product). When shards change, `make run`
compares the teacher's current answers with that record (`sample_change`): while less than
`RetrainPolicy.min_sample_change` of the labeled sample is new, gone or answered otherwise,
the promoted model keeps scoring (the new products are scored with it, their embeddings
encoded, the others reused) and only the changed shards' ingest and scoring and the publish
run. A changed training configuration or code always retrains, and so does `--force`.
The vocabulary is curated in the same step: it moves with the model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

TRAINING_SAMPLE_FILE = "training_sample.parquet"
SAMPLE_SCHEMA = {"product_id": pl.String, "answers": pl.String}


@dataclass(frozen=True)
class RetrainPolicy:
    """When `make run` trains again."""

    min_sample_change: float = 0.05  # share of the teacher-labeled sample new, gone or answered otherwise since the promoted model was trained


def teacher_answers(raw_attributes: pl.DataFrame) -> pl.DataFrame:
    """(product_id, answers): one digest per labeled product of its (key, value) answers."""
    if raw_attributes.is_empty():
        return pl.DataFrame(schema=SAMPLE_SCHEMA)
    pairs = raw_attributes.select("product_id", pl.concat_str("key", pl.lit("="), "value").alias("pair")).unique()
    grouped = pairs.group_by("product_id").agg(pl.col("pair").sort().str.join("|").alias("joined"))
    return grouped.select(
        "product_id",
        pl.col("joined").map_elements(lambda text: hashlib.sha1(text.encode()).hexdigest()[:16], return_dtype=pl.String).alias("answers"),
    ).sort("product_id")


def record_training_sample(model_dir: Path, raw_attributes: pl.DataFrame) -> Path:
    """Write the answers a model is trained on next to its checkpoint."""
    path = Path(model_dir) / TRAINING_SAMPLE_FILE
    teacher_answers(raw_attributes).write_parquet(path)
    return path


def trained_sample(model_dir: Path) -> pl.DataFrame | None:
    """The answers a model was trained on; None for a model saved before they were recorded."""
    path = Path(model_dir) / TRAINING_SAMPLE_FILE
    return pl.read_parquet(path) if path.is_file() else None


def answers_digest(answers: pl.DataFrame) -> str:
    """One digest of a whole `teacher_answers` frame (order-independent)."""
    digest = hashlib.sha1()
    for product_id, answers in answers.sort("product_id").iter_rows():
        digest.update(f"{product_id}:{answers};".encode())
    return digest.hexdigest()[:16]


def sample_change(current: pl.DataFrame, trained: pl.DataFrame) -> float:
    """Share of the products labeled now or at training whose answers are new, gone or
    different (0 when both are empty)."""
    both = current.join(trained, on="product_id", how="full", suffix="_trained", coalesce=True)
    if both.is_empty():
        return 0.0
    changed = both.filter(pl.col("answers").is_null() | pl.col("answers_trained").is_null() | (pl.col("answers") != pl.col("answers_trained")))
    return changed.height / both.height


@dataclass(frozen=True)
class RetrainDecision:
    due: bool
    change: float | None  # None: no record to compare with
    reason: str


def retraining_due(current: pl.DataFrame, trained: pl.DataFrame | None, policy: RetrainPolicy) -> RetrainDecision:
    """Whether the teacher's answers moved enough since the model was trained."""
    if trained is None:
        return RetrainDecision(True, None, "the promoted model has no record of its training sample")
    change = sample_change(current, trained)
    if change >= policy.min_sample_change:
        return RetrainDecision(True, change, f"{change:.1%} of the labeled sample changed since the promoted model was trained (retrain at {policy.min_sample_change:.0%})")
    return RetrainDecision(False, change, f"{change:.1%} of the labeled sample changed since the promoted model was trained (retrain at {policy.min_sample_change:.0%}): the model keeps scoring")
