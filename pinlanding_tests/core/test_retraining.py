"""When the model trains again: the teacher's answers against those the model was trained on."""

from pathlib import Path

import polars as pl

from pinlanding_assets.core.retraining import (
    RetrainPolicy,
    answers_digest,
    record_training_sample,
    retraining_due,
    sample_change,
    teacher_answers,
    trained_sample,
)


def answers(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"product_id": pl.String, "key": pl.String, "value": pl.String}, orient="row")


SAMPLE = [(f"p{i}", "color", "black") for i in range(40)] + [(f"p{i}", "product_type", "shirt") for i in range(40)]


def test_answers_are_one_digest_per_product_whatever_their_order() -> None:
    one = teacher_answers(answers(SAMPLE))
    other = teacher_answers(answers(SAMPLE[::-1] + SAMPLE[:3]))  # reordered, a duplicate row
    assert one.height == 40 and one.equals(other) and answers_digest(one) == answers_digest(other)


def test_small_changes_keep_the_model_and_large_ones_retrain(tmp_path: Path) -> None:
    record_training_sample(tmp_path, answers(SAMPLE))
    trained = trained_sample(tmp_path)
    one_new = teacher_answers(answers(SAMPLE + [("p99", "color", "red")]))  # 1 of 41
    assert sample_change(one_new, trained) == 1 / 41
    assert not retraining_due(one_new, trained, RetrainPolicy()).due
    relabeled = teacher_answers(answers([(p, k, "white" if k == "color" and int(p[1:]) < 4 else v) for p, k, v in SAMPLE]))  # 4 of 40 answered otherwise
    decision = retraining_due(relabeled, trained, RetrainPolicy(min_sample_change=0.05))
    assert decision.due and decision.change == 0.1 and "10.0%" in decision.reason
    assert retraining_due(one_new, trained, RetrainPolicy(min_sample_change=0.0)).due  # 0: any change retrains
    assert retraining_due(one_new, trained_sample(tmp_path / "no-record"), RetrainPolicy()).due  # an older model: no record
