"""The figures bench/bench_active_sampling.py derives from its rounds: the teacher's answers
on each round's picks and the N/2 verdict."""

from __future__ import annotations

import math

import polars as pl

from bench.bench_active_sampling import PICKED_MEASURES, calls_to_reach, n_over_2_verdict, picked_teacher_quality, print_picked_quality

POOL = pl.DataFrame(
    {
        "product_id": ["p1", "p2", "p3", "p4"],
        "label_product_type": ["Shirts", "Shirts", "Watches", "Jeans"],
        "label_color": ["Blue", "Black", "Black", "Blue"],
        "label_gender": ["Men", "Women", "Men", "Men"],
    }
)


def answers(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["product_id", "key", "value"], orient="row")


def test_picked_teacher_quality_judges_only_the_new_picks() -> None:
    raw = answers([
        ("p1", "product_type", "shirt"), ("p1", "color", "blue"), ("p1", "gender", "men"),
        ("p2", "product_type", "shirt"), ("p2", "color", "navy blue"),
        ("p3", "product_type", "watch"), ("p3", "color", "black"), ("p3", "gender", "men"),
    ])  # fmt: skip
    first = picked_teacher_quality(raw, POOL, ["p1", "p2"])
    assert first["picked_products"] == 2
    assert first["picked/product_type coverage"] == 1.0 and first["picked/product_type agreement"] == 1.0
    assert first["picked/color agreement"] == 0.5  # navy blue is not black
    assert first["picked/gender coverage"] == 0.5 and first["picked/gender agreement"] == 1.0
    later = picked_teacher_quality(raw, POOL, ["p3", "p4"])  # p4: asked, nothing answered
    assert later["picked/color coverage"] == 0.5 and later["picked/color agreement"] == 1.0
    assert set(PICKED_MEASURES) <= set(later)


def test_picked_teacher_quality_without_answers_for_a_key() -> None:
    quality = picked_teacher_quality(answers([("p4", "color", "blue")]), POOL, ["p4"])
    assert quality["picked/gender coverage"] == 0.0 and math.isnan(quality["picked/gender agreement"])


def test_picked_table_leaves_out_runs_saved_before_it_was_recorded(capsys) -> None:
    old = {"random": {0: [{"calls": 250, "mean_top1": 0.5}]}}
    print_picked_quality(old)
    assert capsys.readouterr().out == ""
    row = {"calls": 250, "picked_products": 250, **{m: 0.9 for m in PICKED_MEASURES}}
    print_picked_quality({**old, "uncertainty": {0: [row], 1: [row | {"picked/color agreement": 0.7}]}})
    out = capsys.readouterr().out
    assert "uncertainty" in out and "random" not in out
    assert "0.800" in out  # the two seeds' mean colour agreement


def test_calls_to_reach_interpolates_in_log_calls() -> None:
    curve = [(250, 0.4), (1000, 0.6)]
    assert calls_to_reach(curve, 0.3) == 250.0
    assert math.isclose(calls_to_reach(curve, 0.5), 500.0)
    assert calls_to_reach(curve, 0.7) is None


def test_n_over_2_verdict_needs_the_quality_at_half_the_calls() -> None:
    random_runs = {0: [{"calls": 250, "q": 0.4}, {"calls": 500, "q": 0.5}, {"calls": 1000, "q": 0.6}]}
    active_runs = {0: [{"calls": 250, "q": 0.4}, {"calls": 500, "q": 0.61}]}
    verdict = n_over_2_verdict(random_runs, active_runs, "q", seed_size=250)
    assert not verdict[500]["applicable"]  # N/2 is the shared seed sample
    assert verdict[1000]["met"] and verdict[1000]["seeds_met"] == 1
    slower = n_over_2_verdict(random_runs, {0: [{"calls": 250, "q": 0.4}, {"calls": 500, "q": 0.55}, {"calls": 1000, "q": 0.65}]}, "q", seed_size=250)
    assert not slower[1000]["met"] and slower[1000]["uncertainty_calls_needed"] > 500
