"""Which products the (paid) teacher labels: a random sample, or rounds picked by the
model's uncertainty (issue 16).

The paper labels a random sample. Here, under a budget of teacher calls, a first model is
trained on a small random seed sample; then, round after round, the products of the
unlabeled pool the current model is least sure of are sent to the teacher, and the model is
retrained on everything labeled so far. Uncertainty of a product: per key, the margin
(1 - (p1 - p2), the two most probable values) or the normalized entropy of the key's
calibrated probabilities (`scoring.ScoringModel`, by default the published ones, text
evidence included), averaged over the keys the model learned (those the teacher names for
at least half of the labeled products: `learned_keys`). Diversity: the
picks are spread over the products' predicted product types, each type's quota in
proportion to its uncertainty mass (the summed uncertainty of its unlabeled products), so
a round asks about every type the model is unsure of, not only the most confusing one, and
a large type it is already sure of does not take the calls.

Rounds grow geometrically from the seed to the budget (by default 16 rounds of about 19 %
each: 250 -> 297 -> 354 -> ... -> 3364 -> 4000): small rounds let each round's picks come
from a model that has seen the previous round's answers (a round asks about what the last
model was unsure of; a large round asks many products the same gap would have closed), at
one retraining per round. A product is asked at most once: the labeled set only grows (the VLM's
answer cache also makes asking again free; the offline teacher is free anyway), and the
calls counted are the distinct products labeled.

`random` sampling takes the pool in the order of a seeded hash of the product ids (as
`extraction.select_sample`): a budget's sample is a prefix of a larger budget's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from .extraction import _stable_hash
from .text_rules import PRODUCT_TYPE_KEY

if TYPE_CHECKING:
    import polars as pl

    from .scoring import ScoringModel

SAMPLINGS = ("random", "uncertainty")
MEASURES = ("margin", "entropy")
QUOTA_MASSES = ("count", "uncertainty")


@dataclass(frozen=True)
class SamplingConfig:
    """How the products the teacher labels are chosen, under a budget of calls."""

    sampling: str = "random"  # "random": a seeded hash sample; "uncertainty": rounds picked by the model's uncertainty
    seed_size: int = 250  # products of the first, random sample the first model trains on
    budget: int = 4000  # teacher calls in all (distinct products labeled), seed sample included
    # Rounds after the seed sample (a model is retrained after each); labeled products grow
    # geometrically from seed_size to budget. Random sampling takes the next products of its
    # hash order in each round (the same sample as all at once; the rounds' models show the curve).
    # Default 16 (each round ~19 % more products): bench_active_sampling, 3 seeds, reaches
    # random's 4,000-call 5-key mean top-1 with 1,353 calls and its 2,000-call one with 791;
    # 4 rounds (each doubling) needed 1,960 and 1,046 (docs/extraction-and-curation.md).
    rounds: int = 16
    measure: str = "margin"  # per key: "margin" (1 - top-1 + top-2 probability) or "entropy" (normalized)
    # Which probabilities uncertainty reads: "published" (with the text evidence, as pages
    # are scored: on the full catalog it saves 15-40% of the calls, bench_active_sampling)
    # or "encoder" (the towers alone: no better than random there).
    uncertainty_of: str = "published"
    # Spread each round over predicted product types: type t gets a quota proportional to
    # (its mass) ** type_quota_power (1: as the mass, 0: equal per type). The mass of a type
    # (`type_quota_of`): "count", its unlabeled pool products; "uncertainty", the sum of
    # their uncertainty (a type the model is sure of gets few calls however large it is).
    # Default: quotas by uncertainty mass, power 1 (bench_active_sampling, 3 seeds, 4 rounds:
    # count quotas at power 0.5 reached random's 4,000-call mean top-1 with 2,759 calls, these with 1,960).
    diversity_by_type: bool = True
    type_quota_power: float = 1.0
    type_quota_of: str = "uncertainty"
    seed: int = 0  # the random order (seed sample, random sampling, ties)
    # Uncertainty averages only the keys whose teacher values (not "(none)") cover at least
    # this share of the labeled products (0: every key of the vocabulary). Keys the teacher
    # rarely names (occasion, style, pattern, ... under 15% of products with the offline
    # teacher) are mostly "(none)", and their uncertainty dilutes that of the learned keys.
    uncertainty_min_key_share: float = 0.5
    # Share of each uncertainty round taken from the random order instead (exploration).
    explore_share: float = 0.0
    # > 1: the round's picks are chosen among the `spread_factor` x n first candidates (in
    # the quota order) greedily by uncertainty x cosine distance to the round's picks so far,
    # so near-duplicate products are not all asked (needs the pool's embeddings; 0: off).
    spread_factor: float = 0.0
    # > 0: each product's uncertainty is weighted by (its density rank in the pool) **
    # density_power, so a round prefers uncertain products typical of many others to
    # uncertain outliers (information density; needs the pool's embeddings, `pool_density`).
    # Density: mean cosine similarity to the `density_neighbours` nearest pool products.
    density_power: float = 0.0
    density_neighbours: int = 20

    def check(self) -> "SamplingConfig":
        """This config, or ValueError for a setting outside its choices (checked where it is
        used, not when built: run config builds it with any value its types allow)."""
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, not {self.sampling!r}")
        if self.measure not in MEASURES:
            raise ValueError(f"measure must be one of {MEASURES}, not {self.measure!r}")
        if self.type_quota_of not in QUOTA_MASSES:
            raise ValueError(f"type_quota_of must be one of {QUOTA_MASSES}, not {self.type_quota_of!r}")
        if self.uncertainty_of not in ("encoder", "published"):
            raise ValueError(f"uncertainty_of must be 'encoder' or 'published', not {self.uncertainty_of!r}")
        if self.budget < 1 or self.seed_size < 1 or self.rounds < 0:
            raise ValueError("budget and seed_size must be positive, rounds not negative")
        if not 0.0 <= self.explore_share <= 1.0 or not 0.0 <= self.uncertainty_min_key_share <= 1.0:
            raise ValueError("explore_share and uncertainty_min_key_share must be in [0, 1]")
        if self.density_power < 0 or self.density_neighbours < 1:
            raise ValueError("density_power must not be negative, density_neighbours must be positive")
        return self

    @property
    def reads_embeddings(self) -> bool:
        """Whether choosing reads the pool's embeddings (spread or density)."""
        return self.spread_factor > 1 or self.density_power > 0

    def round_targets(self) -> list[int]:
        """Labeled products after each round, the seed sample first: geometric from
        seed_size to budget."""
        if self.rounds == 0 or self.seed_size >= self.budget:
            return [self.budget]
        ratio = (self.budget / self.seed_size) ** (1 / self.rounds)
        targets = [min(self.budget, round(self.seed_size * ratio**r)) for r in range(self.rounds + 1)]
        targets[-1] = self.budget
        return sorted(set(targets))


def random_order(product_ids: Sequence[str], seed: int) -> list[str]:
    """`product_ids` in the order of a seeded hash (as `extraction.select_sample`)."""
    return sorted(product_ids, key=lambda pid: _stable_hash(f"{seed}:{pid}"))


def key_uncertainty(probs: np.ndarray, measure: str) -> np.ndarray:
    """[N] uncertainty in [0, 1] of one key's [N, V] probabilities (rows sum to 1)."""
    if probs.shape[1] < 2:
        return np.zeros(len(probs))
    if measure == "margin":
        top2 = -np.partition(-probs, 1, axis=1)[:, :2]
        return 1.0 - (top2[:, 0] - top2[:, 1])
    p = np.clip(probs, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1) / math.log(probs.shape[1])


def product_uncertainty(probs: np.ndarray, key_slices: dict[str, slice], measure: str = "margin", keys: Sequence[str] | None = None) -> np.ndarray:
    """[N] mean over `keys` (default: every key) of each key's uncertainty."""
    chosen = [k for k in (keys or key_slices) if k in key_slices]
    if not chosen:
        return np.zeros(len(probs))
    return np.mean([key_uncertainty(probs[:, key_slices[k]], measure) for k in chosen], axis=0)


def predicted_values(probs: np.ndarray, key_slices: dict[str, slice], values: Sequence[str], key: str = PRODUCT_TYPE_KEY) -> list[str]:
    """Each product's top-1 value of `key` ("" for every product when the space lacks it)."""
    if key not in key_slices:
        return [""] * len(probs)
    sl = key_slices[key]
    names = list(values[sl])
    return [names[i] for i in probs[:, sl].argmax(axis=1)]


@dataclass(frozen=True)
class PoolScores:
    """The current model's view of the unlabeled pool: what `choose_next` reads."""

    product_ids: list[str]
    uncertainty: np.ndarray  # [N] in [0, 1]
    predicted_type: list[str]  # [N] top-1 product type ("" when unknown)
    embeddings: np.ndarray | None = None  # [N, D] L2-normalized product embeddings (for spread_factor)
    keys: tuple[str, ...] = ()  # the keys whose uncertainty was averaged


def choose_next(pool: PoolScores, already_labeled: set[str], n: int, config: SamplingConfig) -> list[str]:
    """Up to `n` products of the pool, none already labeled: `explore_share` of them the
    next ones of the random order, the rest most uncertain first within per-type quotas
    (see `SamplingConfig`; uncertainty weighted by density when `density_power` > 0),
    spread in embedding space when `spread_factor` > 1; ties go by the seeded hash order.
    Deterministic."""
    tiebreak = {pid: _stable_hash(f"{config.seed}:{pid}") for pid in pool.product_ids}
    candidates = [i for i, pid in enumerate(pool.product_ids) if pid not in already_labeled]
    if n <= 0 or not candidates:
        return []
    explored: list[int] = []
    n_explore = min(n, round(config.explore_share * n))
    if n_explore:
        explored = sorted(candidates, key=lambda i: tiebreak[pool.product_ids[i]])[:n_explore]
        taken = set(explored)
        candidates = [i for i in candidates if i not in taken]
    want = n - len(explored)
    if config.density_power > 0 and pool.embeddings is not None:
        density = pool_density(pool.embeddings, config.density_neighbours)
        pool = replace(pool, uncertainty=pool.uncertainty * density**config.density_power)
    ranked = _quota_order(pool, candidates, tiebreak, config)
    if config.spread_factor > 1 and pool.embeddings is not None:
        chosen = _spread(pool, ranked[: math.ceil(config.spread_factor * want)], want)
    else:
        chosen = ranked[:want]
    return [pool.product_ids[i] for i in explored + chosen]


# Density is measured against at most this many pool products (a seeded choice), so a
# round over a shard of millions costs O(N x this) similarities, not O(N^2).
DENSITY_REFERENCE = 20_000


def pool_density(embeddings: np.ndarray, neighbours: int, chunk: int = 2048) -> np.ndarray:
    """[N] density rank in (0, 1] of each row of the L2-normalized `embeddings`: the rank of
    its mean cosine similarity to its `neighbours` nearest other rows (of a reference of at
    most DENSITY_REFERENCE rows), divided by N. Ranks, not raw similarities: how similar
    neighbours are differs by encoder, the order does not. Deterministic."""
    emb = np.asarray(embeddings, dtype=np.float32)
    n = len(emb)
    if n == 0:
        return np.zeros(0)
    reference = np.arange(n) if n <= DENSITY_REFERENCE else np.sort(np.random.default_rng(0).choice(n, DENSITY_REFERENCE, replace=False))
    k = min(neighbours, len(reference) - 1)
    if k < 1:
        return np.ones(n)
    position = np.full(n, -1)
    position[reference] = np.arange(len(reference))
    mean_similarity = np.empty(n)
    for start in range(0, n, chunk):
        rows = np.arange(start, min(n, start + chunk))
        sims = emb[rows] @ emb[reference].T
        inside = position[rows] >= 0
        sims[np.flatnonzero(inside), position[rows][inside]] = -np.inf  # a row is not its own neighbour
        mean_similarity[rows] = -np.partition(-sims, k - 1, axis=1)[:, :k].mean(axis=1)
    ranks = np.empty(n)
    ranks[np.argsort(mean_similarity, kind="stable")] = np.arange(1, n + 1)
    return ranks / n


def _quota_order(pool: PoolScores, candidates: list[int], tiebreak: dict[str, int], config: SamplingConfig) -> list[int]:
    """`candidates` (pool rows) in the order they are picked: most uncertain first, drawn
    from the predicted types in proportion to their quotas when `diversity_by_type`."""
    # most uncertain first (uncertainty rounded so float noise does not beat the hash order)
    candidates = sorted(candidates, key=lambda i: (-round(float(pool.uncertainty[i]), 9), tiebreak[pool.product_ids[i]]))
    if not config.diversity_by_type:
        return candidates
    by_type: dict[str, list[int]] = {}
    for i in candidates:
        by_type.setdefault(pool.predicted_type[i], []).append(i)
    mass = {t: (len(rows) if config.type_quota_of == "count" else float(sum(pool.uncertainty[i] for i in rows))) for t, rows in by_type.items()}
    weight = {t: max(m, 1e-12) ** config.type_quota_power for t, m in mass.items()}
    # The k-th pick of type t comes at "time" (k + 0.5) / weight_t: a type is drawn from in
    # proportion to its weight (a smooth round-robin), each type's most uncertain first.
    # A type that runs out simply stops being drawn.
    order = sorted(
        ((k + 0.5) / weight[t], -round(float(pool.uncertainty[i]), 9), tiebreak[pool.product_ids[i]], i)
        for t, rows in by_type.items()
        for k, i in enumerate(rows)
    )
    return [entry[-1] for entry in order]


def _spread(pool: PoolScores, ranked: list[int], n: int) -> list[int]:
    """`n` of the `ranked` rows, greedily: each next one maximizes its uncertainty times its
    cosine distance to the nearest one picked so far (the first: the first ranked)."""
    if len(ranked) <= n:
        return list(ranked)
    assert pool.embeddings is not None
    emb = np.asarray(pool.embeddings[ranked], dtype=np.float32)
    gain = np.asarray(pool.uncertainty[ranked], dtype=np.float64)
    nearest = np.full(len(ranked), 2.0)  # cosine distance to the nearest pick (2: none yet)
    free = np.ones(len(ranked), dtype=bool)
    picked = []
    for _ in range(n):
        value = np.where(free, gain * nearest, -np.inf)
        j = int(np.argmax(value))  # the first of equal values: the ranked order decides ties
        picked.append(ranked[j])
        free[j] = False
        nearest = np.minimum(nearest, 1.0 - emb @ emb[j])
    return picked


@dataclass
class SamplingRound:
    """One round: the products it sent to the teacher and the calls paid so far."""

    index: int  # 0: the seed sample
    asked: list[str]
    calls: int  # distinct products labeled after this round (the budget counts these)
    evaluation: dict = field(default_factory=dict)  # whatever `fit` returned for the model trained after it


@dataclass
class ActiveSamplingRun:
    rounds: list[SamplingRound]
    labeled: list[str]  # in the order they were asked

    @property
    def calls(self) -> int:
        return len(self.labeled)


# label(product ids) -> None: ask the teacher about these products (never asked before).
Label = Callable[[list[str]], None]
# fit(labeled product ids, round index, score the pool?) -> (evaluation record, the
# model's view of the unlabeled pool when asked for it, else None).
Fit = Callable[[list[str], int, bool], tuple[dict, PoolScores | None]]


def active_sample(pool_ids: Sequence[str], label: Label, fit: Fit, config: SamplingConfig) -> ActiveSamplingRun:
    """The loop: label a random seed sample, fit a model, and until the budget is spent,
    pick the next products (uncertainty: `choose_next` on the model's view of the pool;
    random: the next ones in the hash order), label them, refit. `fit` is called after every
    round; it is asked to score the pool only when a next round will read it."""
    config.check()
    order = random_order(list(pool_ids), config.seed)
    targets = sorted({min(t, len(order)) for t in config.round_targets()})
    labeled: list[str] = []
    seen: set[str] = set()
    rounds: list[SamplingRound] = []
    pool_view: PoolScores | None = None
    for index, target in enumerate(targets):
        want = target - len(labeled)
        if index == 0 or config.sampling == "random":
            picked = [pid for pid in order if pid not in seen][:want]
        else:
            assert pool_view is not None
            picked = choose_next(pool_view, seen, want, config)
        if picked:
            label(picked)
            labeled.extend(picked)
            seen.update(picked)
        score_pool = config.sampling == "uncertainty" and index + 1 < len(targets)
        evaluation, pool_view = fit(list(labeled), index, score_pool)
        rounds.append(SamplingRound(index, picked, len(labeled), evaluation))
    return ActiveSamplingRun(rounds, labeled)


def learned_keys(space_attributes: "pl.DataFrame", min_share: float) -> list[str]:
    """The keys of a model's space (`AttributeSpace.attributes`: key, value, frequency, the
    "(none)" rows counting the labeled products the teacher gave no value) whose values
    other than "(none)" cover at least `min_share` of the labeled products (every key when
    min_share is 0). In the order the keys first appear."""
    from .training import ABSENT

    keys = space_attributes.get_column("key").unique(maintain_order=True).to_list()
    if min_share <= 0:
        return keys
    chosen = []
    for key in keys:
        rows = space_attributes.filter(space_attributes.get_column("key") == key)
        total = int(rows.get_column("frequency").sum())
        absent = int(rows.filter(rows.get_column("value") == ABSENT).get_column("frequency").sum())
        if total and (total - absent) >= min_share * total - 1e-9:
            chosen.append(key)
    return chosen


def pool_scores(model: "ScoringModel", embeddings: np.ndarray, products, config: SamplingConfig) -> PoolScores:
    """The model's view of `products` (a frame in the order of `embeddings`, with the text
    columns scoring reads): uncertainty of the probabilities `config.uncertainty_of` names
    over the keys it learned (`learned_keys`), the predicted product type (from the
    published scores: the best guess we have) and the embeddings."""
    scores = model.score(embeddings, products)
    probs = scores.encoder_probability if config.uncertainty_of == "encoder" else scores.probability
    values = model.space.attributes.get_column("value").to_list()
    keys = learned_keys(model.space.attributes, config.uncertainty_min_key_share) or list(model.space.key_slices)
    return PoolScores(
        products.get_column("product_id").to_list(),
        product_uncertainty(probs, model.space.key_slices, config.measure, keys=keys),
        predicted_values(scores.probability, model.space.key_slices, values),
        np.asarray(embeddings),
        tuple(keys),
    )


# -- the graph's rounds: one materialization of the shards is one round ---------------------
#
# In the Dagster graph the loop above is unrolled over runs: each `raw_attributes[shard]`
# materialization decides the shard's sample for the next round from what is stored (its
# previous sample, and the scores the last model wrote for it), so re-running the graph
# N times runs N rounds (`shard_round`). The budget is over all shards; each shard gets its
# share of every round's target (`shard_shares`).


def shard_shares(target: int, shard_rows: dict[str, int]) -> dict[str, int]:
    """Each shard's share of `target` products: floor(target x its catalog rows / all rows).

    Floors, not largest remainders: the shares never add up to more than the target, and a
    shard's share never shrinks when the target grows (largest remainders can: the Alabama
    paradox), so a round never has to take back a product. The rounding leaves fewer
    products than there are shards unasked. Catalog rows (valid or not), not valid products:
    every shard knows them before any shard is validated, so the split does not depend on
    which shard is ingested first."""
    total = sum(shard_rows.values())
    if total <= 0:
        return {shard: 0 for shard in shard_rows}
    return {shard: (target * rows) // total for shard, rows in shard_rows.items()}


def pool_scores_from_table(scores: "pl.DataFrame", config: SamplingConfig, space_attributes: "pl.DataFrame | None" = None) -> PoolScores:
    """`PoolScores` from stored scores (the `product_attribute_scores` rows of one model:
    product_id, key, value, probability, encoder_probability; every product x every value of
    the model's space): the same uncertainty as `pool_scores`, of the column
    `config.uncertainty_of` names, over the keys the model learned (`learned_keys` of
    `space_attributes`, the saved space of the model that wrote the scores; every key
    when it is not known), and the predicted product type from the published probability.
    Products in the order they first appear."""
    import polars as pl

    if scores.is_empty():
        return PoolScores([], np.zeros(0), [])
    column = "encoder_probability" if config.uncertainty_of == "encoder" else "probability"
    # The model's space, each key's values contiguous (a key's slice), in stored order.
    attributes = scores.select("key", "value").unique(maintain_order=True).with_row_index("_first").sort("key", "_first").drop("_first")
    key_slices: dict[str, slice] = {}
    for i, key in enumerate(attributes.get_column("key").to_list()):
        start = key_slices[key].start if key in key_slices else i
        key_slices[key] = slice(start, i + 1)
    product_ids = scores.get_column("product_id").unique(maintain_order=True).to_list()
    index = scores.select("product_id", "key", "value", *dict.fromkeys([column, "probability"])).join(
        pl.DataFrame({"product_id": product_ids}).with_row_index("_row"), on="product_id"
    ).join(attributes.with_row_index("_col"), on=["key", "value"])
    rows = index.get_column("_row").to_numpy()
    cols = index.get_column("_col").to_numpy()

    def matrix(name: str) -> np.ndarray:
        out = np.zeros((len(product_ids), attributes.height), dtype=np.float32)
        out[rows, cols] = index.get_column(name).to_numpy()
        return out

    published = matrix("probability")
    probs = published if column == "probability" else matrix(column)
    learned = set(learned_keys(space_attributes, config.uncertainty_min_key_share)) if space_attributes is not None else set()
    keys = [k for k in key_slices if k in learned] or list(key_slices)
    return PoolScores(
        product_ids,
        product_uncertainty(probs, key_slices, config.measure, keys=keys),
        predicted_values(published, key_slices, attributes.get_column("value").to_list()),
        keys=tuple(keys),
    )


def with_embeddings(pool: PoolScores, embeddings: "pl.DataFrame") -> tuple[PoolScores, int]:
    """`pool` with the embeddings of its products (`embeddings`: product_id, embedding, as
    the `product_embeddings` cache stores them), and how many of its products have none.
    When any is missing the pool is returned without embeddings: spread and density need
    every product's (the caller says so; the round is then chosen without them)."""
    found = dict(zip(embeddings.get_column("product_id").to_list(), embeddings.get_column("embedding").to_list()))
    missing = sum(pid not in found for pid in pool.product_ids)
    if missing or not pool.product_ids:
        return replace(pool, embeddings=None), missing
    return replace(pool, embeddings=np.asarray([found[pid] for pid in pool.product_ids], dtype=np.float32)), 0


@dataclass(frozen=True)
class ShardRound:
    """A shard's sample after one materialization with uncertainty sampling."""

    index: int  # the round the sample is at: 0 the seed sample, r the r-th round of picks
    status: str  # "seed sample" | "uncertainty picks" | "budget spent" | "waiting: ..." (why no round was taken)
    sample: list[str]  # the shard's products for the teacher: the previous sample first, then the picks
    picked: list[str]  # new this materialization (the teacher's new calls at most)
    target: int  # the shard's share of this round's target
    budget: int  # the shard's share of the budget
    picked_uncertainty: float | None = None  # mean uncertainty of the picks (uncertainty rounds)
    pool_uncertainty: float | None = None  # mean uncertainty of the scored products left unlabeled
    uncertainty_keys: tuple[str, ...] = ()  # the keys uncertainty was averaged over (the scoring model's learned keys)

    @property
    def took_round(self) -> bool:
        return bool(self.picked)


def shard_round(
    product_ids: Sequence[str],
    previous_sample: Sequence[str],
    pool: PoolScores | None,
    scores_saw_sample: bool,
    targets: Sequence[int],
    config: SamplingConfig,
) -> ShardRound:
    """The shard's sample for its next round (`targets`: the shard's share of each
    `round_targets()`, non-decreasing; the last is its budget).

    The previous sample is always kept (those answers are paid, or cached). Below the seed
    target, the seed sample is topped up from the seeded hash order. Past it, the next
    round's picks come from `choose_next` on `pool` (the last model's scores of the shard),
    but only when that model was trained on the shard's current sample (`scores_saw_sample`):
    otherwise the round's retraining has not happened yet and the sample stays, so
    re-running without retraining asks nothing new. At the budget the sample stays too."""
    config.check()
    valid = set(product_ids)
    previous = [pid for pid in dict.fromkeys(previous_sample) if pid in valid]
    seen = set(previous)
    n = len(previous)
    if pool is not None:  # products that left the shard are no candidates
        keep = [i for i, pid in enumerate(pool.product_ids) if pid in valid]
        embeddings = None if pool.embeddings is None else pool.embeddings[keep]
        pool = PoolScores([pool.product_ids[i] for i in keep], pool.uncertainty[keep], [pool.predicted_type[i] for i in keep], embeddings, pool.keys)
    targets = [min(t, len(valid)) for t in targets] or [0]
    reached = max((i for i, t in enumerate(targets) if t <= n), default=-1)  # the last round whose target the sample reached
    index, status, picked = max(reached, 0), "", []
    if n < targets[0]:
        status = "seed sample"
        picked = [pid for pid in random_order(sorted(valid), config.seed) if pid not in seen][: targets[0] - n]
    elif reached + 1 >= len(targets):
        status = "budget spent"
    elif pool is None:
        status = "waiting: no scores of this shard yet (train the model and score the shard)"
    elif not scores_saw_sample:
        status = "waiting: the stored scores come from a model not trained on this sample (train the model and score the shard)"
    else:
        index, status = reached + 1, "uncertainty picks"
        picked = choose_next(pool, seen, targets[index] - n, config)
    picked_uncertainty = pool_uncertainty = None
    if pool is not None and pool.product_ids:
        of = dict(zip(pool.product_ids, pool.uncertainty.tolist()))
        labeled = seen | set(picked)
        left = [u for pid, u in of.items() if pid not in labeled]
        if status == "uncertainty picks" and picked:
            picked_uncertainty = float(np.mean([of[pid] for pid in picked]))
        pool_uncertainty = float(np.mean(left)) if left else None
    keys = pool.keys if pool is not None else ()
    return ShardRound(index, status, previous + picked, picked, targets[index], targets[-1], picked_uncertainty, pool_uncertainty, keys)
