"""Choosing the products the teacher labels: random vs uncertainty rounds (issue 16)."""

from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from pinlanding_assets.core.active_sampling import (
    PoolScores,
    SamplingConfig,
    active_sample,
    choose_next,
    key_uncertainty,
    learned_keys,
    product_uncertainty,
    random_order,
)


def pool(uncertainty, types=None) -> PoolScores:
    ids = [f"p{i:03d}" for i in range(len(uncertainty))]
    return PoolScores(ids, np.asarray(uncertainty, dtype=float), types or [""] * len(ids))


def test_margin_and_entropy_rank_a_split_decision_above_a_sure_one():
    probs = np.array([[0.98, 0.01, 0.01], [0.5, 0.45, 0.05], [1 / 3, 1 / 3, 1 / 3]])
    for measure in ("margin", "entropy"):
        u = key_uncertainty(probs, measure)
        assert u[0] < u[1] <= u[2] + 1e-9
        assert np.all((u >= 0) & (u <= 1 + 1e-9))
    assert key_uncertainty(probs, "margin")[1] == pytest.approx(0.95)
    assert key_uncertainty(probs, "entropy")[2] == pytest.approx(1.0)


def test_product_uncertainty_averages_the_keys():
    probs = np.array([[0.9, 0.1, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]])
    slices = {"color": slice(0, 2), "gender": slice(2, 4)}
    u = product_uncertainty(probs, slices, "margin")
    assert u == pytest.approx([(0.2 + 1.0) / 2, 1.0])
    assert product_uncertainty(probs, slices, "margin", keys=["color"]) == pytest.approx([0.2, 1.0])


def test_uncertainty_picks_the_most_uncertain_products():
    view = pool([0.1, 0.9, 0.3, 0.8, 0.2])
    picked = choose_next(view, set(), 2, SamplingConfig(sampling="uncertainty", diversity_by_type=False))
    assert picked == ["p001", "p003"]


def test_already_labeled_products_are_never_picked_again():
    view = pool([0.1, 0.9, 0.3, 0.8, 0.2])
    config = SamplingConfig(sampling="uncertainty", diversity_by_type=False)
    assert choose_next(view, {"p001", "p003"}, 2, config) == ["p002", "p004"]
    assert choose_next(view, set(view.product_ids), 3, config) == []


def test_diversity_spreads_a_round_over_predicted_types():
    # type "a" holds every very uncertain product; without diversity a round is all "a"
    types = ["a"] * 10 + ["b"] * 10
    view = pool([0.9 + i * 0.001 for i in range(10)] + [0.5 + i * 0.001 for i in range(10)], types)
    plain = choose_next(view, set(), 6, SamplingConfig(sampling="uncertainty", diversity_by_type=False))
    spread = choose_next(view, set(), 6, SamplingConfig(sampling="uncertainty", type_quota_power=0.0))
    type_of = dict(zip(view.product_ids, types))
    assert {type_of[p] for p in plain} == {"a"}
    assert sorted(type_of[p] for p in spread) == ["a"] * 3 + ["b"] * 3
    # within a type, the most uncertain first
    assert [p for p in spread if type_of[p] == "b"] == ["p019", "p018", "p017"]


def test_quotas_follow_the_type_counts_to_the_configured_power():
    types = ["a"] * 90 + ["b"] * 10
    view = pool([0.5] * 100, types)
    type_of = dict(zip(view.product_ids, types))
    proportional = choose_next(view, set(), 20, SamplingConfig(sampling="uncertainty", type_quota_power=1.0))
    assert sum(type_of[p] == "b" for p in proportional) == 2
    equal = choose_next(view, set(), 20, SamplingConfig(sampling="uncertainty", type_quota_power=0.0))
    assert sum(type_of[p] == "b" for p in equal) == 10  # b has only 10: a fills the rest


def test_selection_is_deterministic_and_ties_go_by_the_seeded_hash():
    view = pool([0.5] * 50, ["a", "b"] * 25)
    config = SamplingConfig(sampling="uncertainty")
    assert choose_next(view, set(), 10, config) == choose_next(view, set(), 10, config)
    assert choose_next(view, set(), 10, config) != choose_next(view, set(), 10, SamplingConfig(sampling="uncertainty", seed=1))
    assert random_order(view.product_ids, 0) == random_order(list(reversed(view.product_ids)), 0)


def test_an_exploration_share_of_a_round_follows_the_random_order():
    view = pool([0.9 if i % 2 else 0.1 for i in range(40)])
    config = SamplingConfig(sampling="uncertainty", diversity_by_type=False, explore_share=0.25)
    picked = choose_next(view, set(), 8, config)
    explored = [p for p in random_order(view.product_ids, 0)][:2]
    assert picked[:2] == explored  # 25% of 8: the first two of the random order
    rest = picked[2:]
    assert len(rest) == 6 and not set(rest) & set(explored)
    assert all(int(p[1:]) % 2 for p in rest)  # the rest: the uncertain (odd) products
    assert choose_next(view, set(), 8, SamplingConfig(sampling="uncertainty", explore_share=1.0))[:8] == random_order(view.product_ids, 0)[:8]


def test_spread_skips_near_duplicates_of_a_pick():
    # p000..p002 are the same product (one embedding), p003 another, p004 a third
    e = np.array([[1.0, 0.0, 0.0]] * 3 + [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    view = PoolScores([f"p{i:03d}" for i in range(5)], np.array([0.9, 0.89, 0.88, 0.6, 0.5]), [""] * 5, e)
    plain = choose_next(view, set(), 3, SamplingConfig(sampling="uncertainty", diversity_by_type=False))
    spread = choose_next(view, set(), 3, SamplingConfig(sampling="uncertainty", diversity_by_type=False, spread_factor=2.0))
    assert plain == ["p000", "p001", "p002"]
    assert spread == ["p000", "p003", "p004"]
    # without embeddings the setting cannot apply: the plain order
    no_emb = PoolScores(view.product_ids, view.uncertainty, view.predicted_type)
    assert choose_next(no_emb, set(), 3, SamplingConfig(sampling="uncertainty", diversity_by_type=False, spread_factor=2.0)) == plain


def test_learned_keys_are_those_the_teacher_names_for_enough_products():
    from pinlanding_assets.core.training import ABSENT, AttributeSpace

    attrs = pl.DataFrame({
        "key": ["color", "color", "occasion", "occasion", "season"],
        "value": ["red", "blue", "party", ABSENT, ABSENT],
        "frequency": [60, 40, 10, 90, 100],
    })
    model = SimpleNamespace(space=AttributeSpace(attrs))
    assert learned_keys(model, 0.5) == ["color"]
    assert learned_keys(model, 0.1) == ["color", "occasion"]
    assert learned_keys(model, 0.0) == ["color", "occasion", "season"]


def test_round_targets_grow_geometrically_to_the_budget():
    assert SamplingConfig(seed_size=250, budget=4000, rounds=4).round_targets() == [250, 500, 1000, 2000, 4000]
    assert SamplingConfig(seed_size=100, budget=100, rounds=3).round_targets() == [100]
    assert SamplingConfig(seed_size=50, budget=300, rounds=0).round_targets() == [300]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        SamplingConfig(sampling="active").check()
    with pytest.raises(ValueError):
        SamplingConfig(measure="variance").check()
    with pytest.raises(ValueError):
        SamplingConfig(explore_share=1.5).check()
    with pytest.raises(ValueError):
        active_sample(["a"], lambda ids: None, lambda ids, i, more: ({}, None), SamplingConfig(budget=0))


def run_loop(config: SamplingConfig, n_products: int = 200):
    """The loop against a fake model whose uncertainty is known: products with an odd index
    are uncertain. Records every call to the teacher."""
    ids = [f"p{i:03d}" for i in range(n_products)]
    asked: list[list[str]] = []
    fits = []

    def fit(labeled, index, score_pool):
        fits.append((len(labeled), score_pool))
        if not score_pool:
            return {"n": len(labeled)}, None
        unlabeled = [p for p in ids if p not in set(labeled)]
        return {"n": len(labeled)}, PoolScores(unlabeled, np.array([0.9 if int(p[1:]) % 2 else 0.1 for p in unlabeled]), ["t"] * len(unlabeled))

    run = active_sample(ids, asked.append, fit, config)
    return run, asked, fits


def test_the_loop_respects_the_budget_and_never_asks_twice():
    run, asked, fits = run_loop(SamplingConfig(sampling="uncertainty", seed_size=20, budget=80, rounds=2))
    flat = [p for batch in asked for p in batch]
    assert len(flat) == len(set(flat)) == run.calls == 80
    assert [r.calls for r in run.rounds] == [20, 40, 80]
    assert fits == [(20, True), (40, True), (80, False)]  # the last model needs no pool view
    # after the random seed, the rounds take the uncertain (odd) products
    assert all(int(p[1:]) % 2 for batch in asked[1:] for p in batch)


def test_random_sampling_in_rounds_is_the_random_sample_of_the_budget():
    run, asked, fits = run_loop(SamplingConfig(sampling="random", seed_size=20, budget=80, rounds=2))
    ids = [f"p{i:03d}" for i in range(200)]
    assert run.labeled == random_order(ids, 0)[:80]
    assert all(not score_pool for _, score_pool in fits)  # random never scores the pool
    single, _, _ = run_loop(SamplingConfig(sampling="random", seed_size=20, budget=80, rounds=0))
    assert single.labeled == run.labeled


def test_a_budget_above_the_pool_labels_the_pool_once():
    run, asked, fits = run_loop(SamplingConfig(sampling="uncertainty", seed_size=20, budget=500, rounds=2), n_products=60)
    assert run.calls == 60 and len({p for b in asked for p in b}) == 60
    assert [n for n, _ in fits] == [20, 60]  # no model refitted on the same products
