"""Choosing the products the teacher labels: random vs uncertainty rounds (issue 16)."""


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
    pool_density,
    product_uncertainty,
    random_order,
    with_embeddings,
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


def test_quotas_by_uncertainty_mass_give_a_type_the_model_is_sure_of_few_calls():
    # a: 90 products the model is nearly sure of; b: 10 it is unsure of. By count a takes
    # most of a round; by uncertainty mass (90 x 0.02 = 1.8 against 10 x 0.9 = 9) b does.
    types = ["a"] * 90 + ["b"] * 10
    view = pool([0.02] * 90 + [0.9] * 10, types)
    type_of = dict(zip(view.product_ids, types))
    by_count = choose_next(view, set(), 12, SamplingConfig(sampling="uncertainty", type_quota_power=1.0, type_quota_of="count"))
    by_mass = choose_next(view, set(), 12, SamplingConfig(sampling="uncertainty", type_quota_power=1.0, type_quota_of="uncertainty"))
    assert sum(type_of[p] == "b" for p in by_count) == 1
    assert sum(type_of[p] == "b" for p in by_mass) == 10  # b's share of the mass is 9 / 10.8: every b, then a
    with pytest.raises(ValueError, match="type_quota_of"):
        SamplingConfig(type_quota_of="size").check()


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


def clustered_embeddings(rng, centres: int, per_centre: int, outliers: int, dim: int = 16) -> np.ndarray:
    """`centres` tight clusters of `per_centre` rows, then `outliers` rows scattered at random."""
    heart = rng.normal(size=(centres, dim))
    rows = [heart[c] + 0.01 * rng.normal(size=dim) for c in range(centres) for _ in range(per_centre)]
    rows += list(rng.normal(size=(outliers, dim)))
    e = np.asarray(rows)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def test_density_ranks_products_in_a_crowd_above_outliers():
    e = clustered_embeddings(np.random.default_rng(0), centres=3, per_centre=10, outliers=5)
    density = pool_density(e, neighbours=5)
    assert density.shape == (35,) and density.max() == pytest.approx(1.0) and density.min() > 0
    assert density[30:].max() < density[:30].min()  # every outlier below every clustered product
    assert np.array_equal(density, pool_density(e, neighbours=5))  # deterministic


def test_density_power_prefers_uncertain_products_typical_of_many():
    # equally uncertain: 10 products of one crowd, then 5 outliers; without density the hash
    # order decides, with it the round goes to the crowd
    e = clustered_embeddings(np.random.default_rng(1), centres=1, per_centre=10, outliers=5)
    view = PoolScores([f"p{i:03d}" for i in range(15)], np.full(15, 0.8), [""] * 15, e)
    config = SamplingConfig(sampling="uncertainty", diversity_by_type=False, density_power=1.0, density_neighbours=3)
    dense = choose_next(view, set(), 5, config)
    assert all(int(p[1:]) < 10 for p in dense)
    # a much more uncertain outlier still beats the crowd: density weights, it does not replace
    louder = PoolScores(view.product_ids, np.where(np.arange(15) == 12, 1.0, 0.05), view.predicted_type, e)
    assert choose_next(louder, set(), 1, config) == ["p012"]
    # without embeddings the setting cannot apply: the plain order
    no_emb = PoolScores(view.product_ids, view.uncertainty, view.predicted_type)
    assert choose_next(no_emb, set(), 5, config) == choose_next(no_emb, set(), 5, SamplingConfig(sampling="uncertainty", diversity_by_type=False))


def test_with_embeddings_aligns_the_cache_to_the_pool_or_says_what_is_missing():
    view = pool([0.5, 0.6, 0.7])
    cache = pl.DataFrame({"product_id": ["p002", "p000", "p001", "other"], "embedding": [[0.0, 1.0], [1.0, 0.0], [0.6, 0.8], [0.0, 0.0]]})
    aligned, missing = with_embeddings(view, cache)
    assert missing == 0 and np.allclose(aligned.embeddings, [[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    partial, missing = with_embeddings(view, cache.filter(pl.col("product_id") != "p001"))
    assert missing == 1 and partial.embeddings is None and partial.product_ids == view.product_ids


def test_learned_keys_are_those_the_teacher_names_for_enough_products():
    from pinlanding_assets.core.training import ABSENT, AttributeSpace

    attrs = pl.DataFrame({
        "key": ["color", "color", "occasion", "occasion", "season"],
        "value": ["red", "blue", "party", ABSENT, ABSENT],
        "frequency": [60, 40, 10, 90, 100],
    })
    assert learned_keys(attrs, 0.5) == ["color"]
    assert learned_keys(attrs, 0.1) == ["color", "occasion"]
    assert learned_keys(attrs, 0.0) == ["color", "occasion", "season"]
    # A model's space, as `pool_scores` reads it.
    assert learned_keys(AttributeSpace(attrs).attributes, 0.5) == ["color"]


def test_round_targets_grow_geometrically_to_the_budget():
    assert SamplingConfig(seed_size=250, budget=4000, rounds=4).round_targets() == [250, 500, 1000, 2000, 4000]
    assert SamplingConfig(seed_size=100, budget=100, rounds=3).round_targets() == [100]
    assert SamplingConfig(seed_size=50, budget=300, rounds=0).round_targets() == [300]
    # The default: 16 small rounds (each ~19 % more products), through every doubling.
    default = SamplingConfig().round_targets()
    assert len(default) == 17 and default[0] == 250 and default[-1] == 4000
    assert {500, 1000, 2000}.issubset(default)
    assert all(1.15 < b / a < 1.23 for a, b in zip(default, default[1:]))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        SamplingConfig(sampling="active").check()
    with pytest.raises(ValueError):
        SamplingConfig(measure="variance").check()
    with pytest.raises(ValueError):
        SamplingConfig(explore_share=1.5).check()
    with pytest.raises(ValueError):
        SamplingConfig(density_power=-1.0).check()
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


# -- the graph's rounds: shard shares, stored scores, one shard's round ----------------------

from pinlanding_assets.core.active_sampling import ShardRound, pool_scores_from_table, predicted_values, shard_round, shard_shares  # noqa: E402


def test_shard_shares_split_a_target_by_catalog_rows_and_never_exceed_it():
    rows = {"apparel": 600, "footwear": 300, "home": 100, "tiny": 7}
    shares = shard_shares(250, rows)
    assert shares == {"apparel": 148, "footwear": 74, "home": 24, "tiny": 1}
    assert sum(shares.values()) <= 250 and 250 - sum(shares.values()) < len(rows)  # rounding leaves fewer than one per shard
    # Monotone in the target: a larger round never takes a product back from a shard.
    config = SamplingConfig(sampling="uncertainty", seed_size=50, budget=1007, rounds=4)
    per_round = [shard_shares(t, rows) for t in config.round_targets()]
    for before, after in zip(per_round, per_round[1:]):
        assert all(after[s] >= before[s] for s in rows)
    assert per_round[-1] == rows  # a budget of every row: every product
    assert shard_shares(10, {}) == {} and shard_shares(10, {"a": 0}) == {"a": 0}


def scores_table(product_ids, attributes, probs, encoder=None):
    """Stored scores (product_attribute_scores rows) of [N, A] probabilities."""
    import polars as pl

    rows = []
    for i, pid in enumerate(product_ids):
        for j, (key, value) in enumerate(attributes):
            rows.append({"product_id": pid, "key": key, "value": value, "probability": float(probs[i, j]), "encoder_probability": float((encoder if encoder is not None else probs)[i, j]), "model_version": "m1"})
    return pl.DataFrame(rows)


def test_pool_scores_from_the_stored_table_match_the_matrix_rule():
    # Keys interleaved in the table: the slices must still group each key's values.
    attributes = [("product_type", "shoe"), ("color", "black"), ("product_type", "bag"), ("color", "white"), ("product_type", "(none)")]
    probs = np.array([[0.7, 0.5, 0.2, 0.5, 0.1], [0.1, 0.9, 0.8, 0.1, 0.1], [0.4, 0.6, 0.4, 0.4, 0.2]])
    encoder = np.array([[0.5, 0.5, 0.5, 0.5, 0.0], [0.9, 1.0, 0.1, 0.0, 0.0], [0.9, 1.0, 0.1, 0.0, 0.0]])
    table = scores_table(["a", "b", "c"], attributes, probs, encoder)
    ordered = [1, 3, 0, 2, 4]  # color first (sorted keys), then product_type, each in stored order
    slices = {"color": slice(0, 2), "product_type": slice(2, 5)}
    for config in (SamplingConfig(), SamplingConfig(measure="entropy"), SamplingConfig(uncertainty_of="encoder")):
        view = pool_scores_from_table(table, config)
        source = encoder if config.uncertainty_of == "encoder" else probs
        assert view.product_ids == ["a", "b", "c"]
        assert view.uncertainty == pytest.approx(product_uncertainty(source[:, ordered], slices, config.measure), abs=1e-6)
        # The predicted type always reads the published probability.
        assert view.predicted_type == predicted_values(probs[:, ordered], slices, [attributes[j][1] for j in ordered]) == ["shoe", "bag", "shoe"]
    assert view.uncertainty[0] == pytest.approx((1.0 + (1 - 0.0)) / 2)  # encoder: both keys split evenly
    assert view.keys == ("color", "product_type")  # no saved space given: every key
    empty = pool_scores_from_table(table.head(0), SamplingConfig())
    assert empty.product_ids == [] and len(empty.uncertainty) == 0


def test_pool_scores_from_the_stored_table_average_the_keys_the_scoring_model_learned():
    # The space saved with the model: the teacher named a colour for 9 products in 10, a
    # product type for 1 in 10, so only colour is a learned key at the default share.
    attributes = [("product_type", "shoe"), ("product_type", "(none)"), ("color", "black"), ("color", "white")]
    space = pl.DataFrame({"key": [k for k, _ in attributes], "value": [v for _, v in attributes], "frequency": [1, 9, 5, 4]})
    probs = np.array([[0.5, 0.5, 0.9, 0.1], [0.9, 0.1, 0.5, 0.5]])
    table = scores_table(["a", "b"], attributes, probs)
    view = pool_scores_from_table(table, SamplingConfig(), space)
    assert view.keys == ("color",)
    colour = probs[:, 2:4]
    assert view.uncertainty == pytest.approx(product_uncertainty(colour, {"color": slice(0, 2)}, "margin"), abs=1e-6)
    assert view.uncertainty[1] > view.uncertainty[0]  # b: sure of its type but not its colour
    # Every key at share 0, and a space naming keys the table lacks falls back to the table's.
    assert pool_scores_from_table(table, SamplingConfig(uncertainty_min_key_share=0.0), space).keys == ("color", "product_type")
    other = pl.DataFrame({"key": ["pattern"], "value": ["striped"], "frequency": [3]})
    assert pool_scores_from_table(table, SamplingConfig(), other).keys == ("color", "product_type")


UNCERTAIN = SamplingConfig(sampling="uncertainty", seed_size=10, budget=40, rounds=2, diversity_by_type=False)  # targets 10, 20, 40
IDS = [f"p{i:03d}" for i in range(100)]


def test_the_seed_round_is_the_seeded_hash_order_and_deterministic():
    targets = [10, 20, 40]
    first = shard_round(IDS, [], None, False, targets, UNCERTAIN)
    assert (first.index, first.status, first.target, first.budget) == (0, "seed sample", 10, 40)
    assert first.sample == first.picked == random_order(IDS, UNCERTAIN.seed)[:10]
    assert shard_round(list(reversed(IDS)), [], None, False, targets, UNCERTAIN) == first  # the catalog's row order does not matter
    # A stored sample below the seed target is kept and topped up.
    kept = ["p099", "p098"]
    topped = shard_round(IDS, kept, None, False, targets, UNCERTAIN)
    assert topped.sample[:2] == kept and len(topped.sample) == 10 and len(set(topped.sample)) == 10
    # Re-run before any model scored the shard: the same sample, nothing new to ask.
    again = shard_round(IDS, first.sample, None, False, targets, UNCERTAIN)
    assert again.sample == first.sample and again.picked == [] and again.status.startswith("waiting: no scores")


def test_a_round_with_scores_adds_the_most_uncertain_unlabeled_products():
    targets = [10, 20, 40]
    seed = shard_round(IDS, [], None, False, targets, UNCERTAIN).sample
    uncertainty = np.array([i / 100 for i in range(100)])  # p099 the least sure
    scores = PoolScores(IDS, uncertainty, ["shoe"] * 100)
    nxt = shard_round(IDS, seed, scores, True, targets, UNCERTAIN)
    assert (nxt.index, nxt.status, nxt.target) == (1, "uncertainty picks", 20)
    assert nxt.sample[:10] == seed and len(nxt.picked) == 10 and not set(nxt.picked) & set(seed)  # the previous sample kept, never asked twice
    expected = [pid for pid in sorted(IDS, reverse=True) if pid not in seed][:10]
    assert nxt.picked == expected
    assert nxt.picked_uncertainty > nxt.pool_uncertainty
    assert shard_round(IDS, seed, scores, True, targets, UNCERTAIN) == nxt  # deterministic
    # The scores' model was not trained on this sample (no retraining yet): the sample stays.
    stale = shard_round(IDS, nxt.sample, scores, False, targets, UNCERTAIN)
    assert stale.picked == [] and stale.sample == nxt.sample and stale.index == 1 and stale.status.startswith("waiting: the stored scores")
    # Scores of products that left the shard are no candidates.
    gone = shard_round(IDS[:50], [pid for pid in seed if pid in IDS[:50]], scores, True, targets, UNCERTAIN)
    assert set(gone.sample) <= set(IDS[:50])


def test_at_the_budget_the_sample_stays_as_it_is():
    targets = [10, 20, 40]
    scores = PoolScores(IDS, np.linspace(0, 1, 100), [""] * 100)
    sample = shard_round(IDS, [], None, False, targets, UNCERTAIN).sample
    for expected_index in (1, 2):
        step = shard_round(IDS, sample, scores, True, targets, UNCERTAIN)
        assert step.index == expected_index and len(step.sample) == targets[expected_index]
        sample = step.sample
    spent = shard_round(IDS, sample, scores, True, targets, UNCERTAIN)
    assert (spent.status, spent.picked, spent.sample, spent.index) == ("budget spent", [], sample, 2)
    # A larger sample stored earlier (a random run's) is never cut back to the budget.
    big = random_order(IDS, 1)[:60]
    assert shard_round(IDS, big, scores, True, targets, UNCERTAIN).sample == sorted(big, key=big.index)
    # A shard smaller than its share: every product, then nothing.
    small = shard_round(IDS[:5], [], None, False, targets, UNCERTAIN)
    assert sorted(small.sample) == IDS[:5] and small.target == 5
    assert shard_round(IDS[:5], small.sample, scores, True, targets, UNCERTAIN).status == "budget spent"


def test_shard_round_spreads_picks_over_types_and_checks_its_config():
    targets = [4, 12]
    ids = [f"q{i:02d}" for i in range(40)]
    types = ["shoe"] * 30 + ["bag"] * 10
    scores = PoolScores(ids, np.array([0.9] * 30 + [0.5] * 10), types)  # bags less uncertain, not sure
    seed = shard_round(ids, [], None, False, targets, SamplingConfig(sampling="uncertainty", seed_size=4, budget=12, rounds=1)).sample
    step = shard_round(ids, seed, scores, True, targets, SamplingConfig(sampling="uncertainty", seed_size=4, budget=12, rounds=1))
    assert {types[ids.index(p)] for p in step.picked} == {"shoe", "bag"}  # diversity by type, default on: bags keep a quota
    assert isinstance(step, ShardRound)
    with pytest.raises(ValueError):
        shard_round(ids, [], None, False, targets, SamplingConfig(measure="gini"))
