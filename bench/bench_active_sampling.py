"""Benchmark of uncertainty-driven teacher sampling against random sampling (issue 16).

    .venv/bin/python bench/bench_active_sampling.py [--seeds 0,1,2] [--budget 4000] [--seed-size 250]
        [--rounds 16] [--random-rounds R] [--min-key-share 0.5] [--explore-share 0] [--spread-factor 0]
        [--density-power 0] [--density-neighbours 20]
        [--eval-size 5000] [--pool-size 15000] [--limit N] [--methods random,uncertainty]
        [--random-from earlier.json] [--png out.png] [--json out.json] [--replot earlier.json[,other-seeds.json]]

On the shared catalog, with the offline teacher standing in for the VLM (each product it
labels counts as one call; it reads content only, never the label columns):

* a fixed evaluation slice (`--eval-size` products drawn by a seeded hash) is never labeled;
  the candidate pool is up to `--pool-size` other products (same pool for both methods);
* each method runs `active_sampling.active_sample`: a random seed sample, then rounds that
  grow the labeled set geometrically to the budget (by default 16 rounds: 250 -> 297 -> ... -> 4000);
  random sampling takes the next products of its hash order, uncertainty sampling asks
  `choose_next` on the current model's view of the pool (the pool encoded once per round);
* after every round the vocabulary is curated from the teacher's answers so far and a model
  is fitted exactly as `clip_model` fits it (`fit_dual_encoder`, settings through
  ModelConfig/SamplingConfig run config, as the assets build them) and judged on the
  evaluation slice against the catalog labels: per-key top-1 of the published scores
  (lenient mapping; product type also "mapped") and their mean over the five keys.

Each method runs once per sampling seed (`--seeds`: another seed sample and random order;
the evaluation slice, pool and training seed stay the same). It prints per round the mean
(std) over seeds; for each quality measure (the headline 5-key mean, the mean over the
three keys the teacher names, each key) whether uncertainty's seed-mean curve reaches with
N/2 calls what random's reaches with N (and in how many seeds that holds seed by seed);
the teacher's coverage and agreement with the labels on each round's new picks (are the
calls a method spends answered as well as random ones?); and writes the plot of both means
against calls (band: one std over seeds).
Random sampling's sample does not depend on its rounds (a prefix of the hash order), which
only place the points where its model is measured: `--random-rounds` (default: one per
doubling of the seed sample, 250 -> 500 -> ... -> 4000, the N the verdict is given for),
whatever the uncertainty rounds (`--rounds`, default `SamplingConfig.rounds`).
`--random-from` takes random's curves from an earlier `--json` (random sampling does not
depend on any uncertainty setting), to measure uncertainty variants alone. `--replot` prints
the tables and verdict and draws `--png` again from earlier runs' `--json` without running
anything; runs of other seeds (same slice, pool and settings) are merged, so more seeds can
be run later and judged with the earlier ones.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pinlanding_assets.core.active_sampling import ActiveSamplingRun, SamplingConfig, active_sample, pool_scores  # noqa: E402
from pinlanding_assets.core.catalog import TeacherInputs, load_catalog, locate_catalog  # noqa: E402
from pinlanding_assets.core.clip_model import ModelSpec, embed_products, load_encoder  # noqa: E402
from pinlanding_assets.core.evaluation import CATALOG_LABELS, teacher_agreement  # noqa: E402
from pinlanding_assets.core.extraction import OfflineExtractor, SampleSpec, select_sample  # noqa: E402
from pinlanding_assets.core.model_fitting import PUBLISHED, AssignmentConfig, fit_dual_encoder, training_inputs  # noqa: E402
from pinlanding_assets.core.plots import quality_vs_calls_panels_png  # noqa: E402
from pinlanding_assets.core.scoring import ScoringModel  # noqa: E402
from pinlanding_assets.core.settings import SHARED_DATASET  # noqa: E402
from pinlanding_assets.core.training import TrainingConfig  # noqa: E402
from pinlanding_assets.core.vocabulary import CurationConfig, curate_vocabulary, minilm_encoder  # noqa: E402
from pinlanding_assets.defs.extraction_assets import ExtractionConfig  # noqa: E402
from pinlanding_assets.defs.model_assets import ModelConfig  # noqa: E402

REPORTED_KEYS = ("product_type", "color", "gender", "occasion", "season")
TEACHER_KEYS = ("product_type", "color", "gender")  # the keys the offline teacher names for nearly every product
LENIENT, MAPPED = f"{CATALOG_LABELS} (lenient)", f"{CATALOG_LABELS} (mapped)"


class Teacher:
    """The offline teacher of each shard (types discovered from all of its titles: free),
    asked only about the products the sampling picks; counts the distinct products asked."""

    def __init__(self, products: pl.DataFrame, inputs: TeacherInputs):
        self.by_shard = {s: OfflineExtractor.for_shard(products.filter(pl.col("shard") == s), inputs) for s in products.get_column("shard").unique().sort()}
        self.products = pl.concat([t.with_pixel_colors(products.filter(pl.col("shard") == s)) for s, t in self.by_shard.items()])
        self.answers: list[pl.DataFrame] = []
        self.asked: set[str] = set()

    def fresh(self) -> "Teacher":
        """The same teacher with nothing asked yet (for the next method)."""
        other = object.__new__(Teacher)
        other.by_shard, other.products, other.answers, other.asked = self.by_shard, self.products, [], set()
        return other

    def label(self, product_ids: list[str]) -> None:
        fresh = [p for p in product_ids if p not in self.asked]
        assert len(fresh) == len(product_ids), "a product was asked twice"
        self.asked.update(fresh)
        rows = self.products.filter(pl.col("product_id").is_in(fresh))
        for shard, teacher in self.by_shard.items():
            part = rows.filter(pl.col("shard") == shard)
            if part.height:
                self.answers.append(teacher.extract(part).attributes)

    def raw_attributes(self) -> pl.DataFrame:
        return pl.concat(self.answers)


def run_method(name: str, config: SamplingConfig, teacher: "Teacher", pool: pl.DataFrame, heldout: pl.DataFrame, inputs: TeacherInputs, model_config: ModelConfig, text_encoder, workdir: Path) -> tuple[ActiveSamplingRun, "Teacher"]:
    pool = teacher.products.join(pool.select("product_id"), on="product_id", how="semi")
    heldout = teacher.products.join(heldout.select("product_id"), on="product_id", how="semi")
    spec, training, assignment = model_config.to_core(ModelSpec), model_config.to_core(TrainingConfig, test_share=0.0), model_config.to_core(AssignmentConfig)
    measured: set[str] = set()  # labeled products whose teacher answers a round has judged

    def fit(labeled_ids: list[str], index: int, score_pool: bool):
        started = time.perf_counter()
        raw = teacher.raw_attributes()
        vocabulary = curate_vocabulary(raw, CurationConfig(), encoder=text_encoder)
        labeled = pool.filter(pl.col("product_id").is_in(labeled_ids))
        fitted = fit_dual_encoder(training_inputs(labeled, raw, vocabulary, heldout), spec, training, assignment, workdir / f"{name}-{index}", baseline_max_products=64, teacher_inputs=inputs)
        lenient, mapped = fitted.evaluations[LENIENT][PUBLISHED], fitted.evaluations[MAPPED][PUBLISHED]
        record = {
            "calls": len(teacher.asked),
            "labeled_products": fitted.split_sizes["train"] + fitted.split_sizes["validation"],
            "heldout_products": lenient.n_products,
            "vocabulary_size": len(fitted.space),
            **{f"top1/{k}": lenient.top1.get(k, float("nan")) for k in REPORTED_KEYS},
            "top1/product_type (mapped)": mapped.top1.get("product_type", float("nan")),
            "mean_top1": float(np.mean([lenient.top1.get(k, 0.0) for k in REPORTED_KEYS])),
            "mean_top1_teacher_keys": float(np.mean([lenient.top1.get(k, 0.0) for k in TEACHER_KEYS])),
            "train_seconds": round(fitted.training.seconds, 1),
        }
        picked = [p for p in labeled_ids if p not in measured]
        measured.update(picked)
        record |= picked_teacher_quality(raw, pool, picked)
        view = None
        if score_pool:
            encoder, extra = load_encoder(fitted.saved.directory)
            model = ScoringModel.from_saved(encoder, extra, fitted.saved.version)
            unlabeled = pool.filter(~pl.col("product_id").is_in(labeled_ids))
            embeddings = embed_products(encoder, unlabeled.get_column("image_path").to_list(), unlabeled.get_column("title").to_list()).numpy()
            view = pool_scores(model, embeddings, unlabeled, config)
            record["pool_uncertainty_mean"] = float(view.uncertainty.mean())
        record["round_seconds"] = round(time.perf_counter() - started, 1)
        print(f"[{name} round {index}] {json.dumps(record)}", flush=True)
        return record, view

    return active_sample(pool.get_column("product_id").to_list(), teacher.label, fit, config), teacher


PICKED_MEASURES = tuple(f"picked/{k} {m}" for k in TEACHER_KEYS for m in ("coverage", "agreement"))


def picked_teacher_quality(raw: pl.DataFrame, pool: pl.DataFrame, picked: list[str]) -> dict[str, float | int]:
    """How the teacher answered on one round's new picks (the seed sample in round 0), per
    teacher key: coverage (share it gave a value) and agreement with the catalog labels
    (`evaluation.teacher_agreement`; labels read for this figure only, never by the
    sampling). Shows whether the calls a method spends buy answers as good as random ones."""
    agreement = teacher_agreement(raw.filter(pl.col("product_id").is_in(picked)), pool.filter(pl.col("product_id").is_in(picked)))
    record: dict[str, float | int] = {"picked_products": len(picked)}
    for key in TEACHER_KEYS:
        row = agreement.get(key, {})
        record[f"picked/{key} coverage"] = float(row.get("coverage", 0.0))
        record[f"picked/{key} agreement"] = float(row.get("agreement", float("nan")))
    return record


def doublings(seed_size: int, budget: int) -> int:
    """The fewest rounds from `seed_size` to `budget` in which each round at most doubles the
    labeled products (`round_targets` grows them geometrically: 250 -> 500 -> ... -> 4000)."""
    return math.ceil(math.log2(budget / seed_size) - 1e-9) if budget > seed_size else 0


def calls_to_reach(points: list[tuple[int, float]], quality: float) -> float | None:
    """Calls at which a curve first reaches `quality`, interpolated linearly in log(calls)
    between its measured points; None when it never does."""
    points = sorted(points)
    if points[0][1] >= quality:
        return float(points[0][0])
    for (c0, q0), (c1, q1) in zip(points, points[1:]):
        if q1 >= quality:
            t = (quality - q0) / (q1 - q0)
            return float(np.exp(np.log(c0) + t * (np.log(c1) - np.log(c0))))
    return None


# The quality measures the verdict is computed for (record fields). The headline is the
# 5-key mean; the teacher-keys mean leaves out occasion and season, which the offline
# teacher rarely names (both stay near 0 whatever the sample).
MEASURES = {"mean_top1": "mean top-1, 5 keys", "mean_top1_teacher_keys": "mean top-1, type/colour/gender", **{f"top1/{k}": f"top-1 {k}" for k in (*TEACHER_KEYS, "product_type (mapped)")}}


def mean_curve(runs: dict[int, list[dict]], measure: str) -> list[tuple[int, float, float]]:
    """(calls, mean over seeds, std over seeds) at each round's calls."""
    by_calls: dict[int, list[float]] = {}
    for rows in runs.values():
        for row in rows:
            by_calls.setdefault(row["calls"], []).append(row[measure])
    return [(c, float(np.mean(v)), float(np.std(v))) for c, v in sorted(by_calls.items())]


def n_over_2_verdict(random_runs: dict[int, list[dict]], active_runs: dict[int, list[dict]], measure: str, seed_size: int) -> dict[int, dict]:
    """For each N of random's curve: the calls uncertainty needs (its seed-mean curve) to
    reach random's seed-mean quality at N, whether that is <= N/2, and in how many seeds the
    same holds seed by seed. N/2 at or below the seed sample cannot be met (both methods
    share the seed sample): marked not applicable."""
    random_mean = [(c, m) for c, m, _ in mean_curve(random_runs, measure)]
    active_mean = [(c, m) for c, m, _ in mean_curve(active_runs, measure)]
    verdict = {}
    for calls, quality in random_mean:
        needed = calls_to_reach(active_mean, quality)
        per_seed = []
        for seed in sorted(set(random_runs) & set(active_runs)):
            q = next(r[measure] for r in random_runs[seed] if r["calls"] == calls)
            n = calls_to_reach([(r["calls"], r[measure]) for r in active_runs[seed]], q)
            per_seed.append(n is not None and n <= calls / 2)
        verdict[calls] = {
            "random_quality": quality,
            "uncertainty_calls_needed": needed,
            "applicable": calls / 2 > seed_size,
            "met": calls / 2 > seed_size and needed is not None and needed <= calls / 2,
            "seeds_met": int(sum(per_seed)),
            "seeds": len(per_seed),
        }
    return verdict


def print_tables(results: dict[str, dict[int, list[dict]]], configs: dict[str, SamplingConfig], heldout_size: int) -> dict:
    print(f"held-out top-1 on {heldout_size} products never labeled, against catalog labels (lenient; product type also mapped), published scores; mean (std) over sampling seeds")
    columns = ["mean_top1", "mean_top1_teacher_keys", *(f"top1/{k}" for k in REPORTED_KEYS), "top1/product_type (mapped)"]
    for method, runs in results.items():
        print(f"  {method} (seeds {sorted(runs)}): {configs[method]}")
        print("    " + f"{'calls':>6}" + "".join(f"{c.replace('top1/', '').replace('mean_top1_teacher_keys', 'mean (3 keys)').replace('product_type (mapped)', 'type (mapped)'):>18}" for c in columns))
        curves = {c: mean_curve(runs, c) for c in columns}
        for i, (calls, _, _) in enumerate(curves["mean_top1"]):
            print("    " + f"{calls:6d}" + "".join(f"{curves[c][i][1]:11.4f} ({curves[c][i][2]:.3f})" for c in columns))
    print_picked_quality(results)
    verdicts = {}
    if "random" in results and "uncertainty" in results:
        seed_size = configs["uncertainty"].seed_size
        print("  N/2 target: calls uncertainty needs (seed-mean curve, log-interpolated) to reach random's seed-mean quality at N")
        for measure, label in MEASURES.items():
            verdicts[measure] = v = n_over_2_verdict(results["random"], results["uncertainty"], measure, seed_size)
            cells = []
            for calls, r in v.items():
                needed = "never" if r["uncertainty_calls_needed"] is None else f"{r['uncertainty_calls_needed']:.0f}"
                state = "n/a" if not r["applicable"] else ("MET" if r["met"] else "not met")
                cells.append(f"N={calls}: {needed} {state} ({r['seeds_met']}/{r['seeds']} seeds)" if r["applicable"] else f"N={calls}: {needed} n/a")
            print(f"    {label:32s} " + "; ".join(cells))
    return verdicts


def print_picked_quality(results: dict[str, dict[int, list[dict]]]) -> None:
    """Per method and round, the teacher's coverage and agreement on that round's new picks
    (seed means). Runs saved before these fields were recorded are left out."""
    recorded = {m: runs for m, runs in results.items() if all(PICKED_MEASURES[0] in row for rows in runs.values() for row in rows)}
    if not recorded:
        return
    print("  teacher answers on each round's new picks (round 0: the seed sample), against catalog labels; mean over seeds")
    for method, runs in recorded.items():
        print(f"  {method}")
        print("    " + f"{'calls':>6}{'picked':>8}" + "".join(f"{c.replace('picked/', '').replace('product_type', 'type'):>20}" for c in PICKED_MEASURES))
        curves = {c: mean_curve(runs, c) for c in ("picked_products", *PICKED_MEASURES)}
        for i, (calls, picked, _) in enumerate(curves["picked_products"]):
            print("    " + f"{calls:6d}{picked:8.0f}" + "".join(f"{curves[c][i][1]:20.3f}" for c in PICKED_MEASURES))


def write_plot(results: dict[str, dict[int, list[dict]]], heldout_size: int, n_seeds: int, png: Path) -> None:
    """Both methods' seed-mean curves of the first two measures (5-key and 3-key means)."""
    panels = {label: {m: mean_curve(runs, measure) for m, runs in results.items()} for measure, label in list(MEASURES.items())[:2]}
    png.write_bytes(quality_vs_calls_panels_png(panels, f"Teacher sampling: random vs uncertainty ({heldout_size} held-out products, {n_seeds} seeds, band: 1 std)"))
    print(f"plot: {png}")


def merged_runs(paths: list[Path]) -> tuple[dict[str, dict[int, list[dict]]], dict[str, SamplingConfig], dict]:
    """The results of earlier runs' --json merged: runs of other seeds of the same setup and
    settings (a method's config may differ only in its seed); a seed run twice is refused."""
    results: dict[str, dict[int, list[dict]]] = {}
    configs: dict[str, dict] = {}
    setup = None
    for path in paths:
        saved = json.loads(path.read_text())
        assert setup is None or saved["setup"] == setup, f"{path}: another slice or pool than the first run"
        setup = saved["setup"]
        for method, runs in saved["results"].items():
            config = {k: v for k, v in saved["configs"][method].items() if k != "seed"}
            assert configs.setdefault(method, config) == config, f"{path}: other {method} settings than the first run"
            for seed, rows in runs.items():
                assert int(seed) not in results.setdefault(method, {}), f"{path}: seed {seed} of {method} is in two runs"
                results[method][int(seed)] = rows
    return results, {m: SamplingConfig(**c) for m, c in configs.items()}, setup or {}


def replot(earlier: list[Path], png: Path | None, out_json: Path | None) -> int:
    """Tables, verdict and plot of earlier runs' --json (merged: `merged_runs`), without
    running anything again."""
    results, configs, setup = merged_runs(earlier)
    heldout_size = next(row["heldout_products"] for runs in results.values() for rows in runs.values() for row in rows)
    verdicts = print_tables(results, configs, heldout_size)
    if png:
        write_plot(results, heldout_size, max(len(runs) for runs in results.values()), png)
    if out_json:
        out_json.write_text(json.dumps({"command": "bench/bench_active_sampling.py --replot " + ",".join(map(str, earlier)), "setup": setup, "results": results, "n_over_2": verdicts, "configs": {m: vars(c) for m, c in configs.items()}}, indent=2, default=float))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", default=str(SHARED_DATASET))
    parser.add_argument("--budget", type=int)
    parser.add_argument("--seed-size", type=int)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--random-rounds", type=int, help="rounds of random sampling (its measurement points; default: one per doubling from the seed size to the budget)")
    parser.add_argument("--measure", choices=["margin", "entropy"])
    parser.add_argument("--uncertainty-of", choices=["encoder", "published"])
    parser.add_argument("--type-quota-power", type=float)
    parser.add_argument("--type-quota-of", choices=["count", "uncertainty"])
    parser.add_argument("--no-diversity", action="store_const", const=False, dest="diversity_by_type")
    parser.add_argument("--min-key-share", type=float)
    parser.add_argument("--explore-share", type=float)
    parser.add_argument("--spread-factor", type=float)
    parser.add_argument("--density-power", type=float)
    parser.add_argument("--density-neighbours", type=int)
    parser.add_argument("--seeds", default="0", help="sampling seeds (seed sample and random order), comma-separated; the evaluation slice and pool stay the same")
    parser.add_argument("--methods", default="random,uncertainty")
    parser.add_argument("--random-from", help="a --json of an earlier run: take its random curves (same slice, pool, rounds and seeds) instead of running random again")
    parser.add_argument("--eval-size", type=int, default=5000)
    parser.add_argument("--pool-size", type=int, default=15000)
    parser.add_argument("--limit", type=int, help="only the first N products of the catalog (a slice)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--png", default="bench/active_sampling.png")
    parser.add_argument("--json")
    parser.add_argument("--replot", metavar="JSON[,JSON]", help="only print the tables and verdict and draw --png of earlier runs' --json, runs of other seeds merged (their commands are in those files)")
    args = parser.parse_args(argv)
    if args.replot:
        return replot([Path(x) for x in args.replot.split(",")], Path(args.png) if args.png else None, Path(args.json) if args.json else None)
    seeds = [int(x) for x in args.seeds.split(",")]
    # Run config as the pipeline takes it: SamplingConfig lives in raw_attributes' config
    # (prefix active_), model settings in clip_model's.
    given = {"budget": args.budget, "seed_size": args.seed_size, "rounds": args.rounds, "measure": args.measure, "uncertainty_of": args.uncertainty_of, "type_quota_power": args.type_quota_power, "type_quota_of": args.type_quota_of, "diversity_by_type": args.diversity_by_type, "uncertainty_min_key_share": args.min_key_share, "explore_share": args.explore_share, "spread_factor": args.spread_factor, "density_power": args.density_power, "density_neighbours": args.density_neighbours}
    sampling_fields = {f"active_{k}": v for k, v in given.items() if v is not None}
    model_config = ModelConfig()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    catalog = load_catalog(locate_catalog(args.catalog))
    products = catalog.products if args.limit is None else catalog.products.head(args.limit)
    heldout = select_sample(products, SampleSpec(share=1.0, min_count=0, max_count=args.eval_size, seed=101))
    rest = products.join(heldout.select("product_id"), on="product_id", how="anti")
    pool = select_sample(rest, SampleSpec(share=1.0, min_count=0, max_count=args.pool_size, seed=202))
    print(f"[catalog] {products.height} products: evaluation slice {heldout.height}, pool {pool.height}; {time.perf_counter() - started:.0f}s", flush=True)
    inputs = TeacherInputs()  # content first: title, description, image, the merchant's category
    text_encoder = minilm_encoder()
    teacher = Teacher(products, inputs)
    print(f"[teacher] ready (pixel colours of every product), {time.perf_counter() - started:.0f}s", flush=True)

    def sampling_config(method: str, seed: int) -> SamplingConfig:
        config = ExtractionConfig(active_sampling=method, active_seed=seed, **sampling_fields).to_core(SamplingConfig)
        if method == "random":  # its rounds only place its measurement points
            config = replace(config, rounds=args.random_rounds if args.random_rounds is not None else doublings(config.seed_size, config.budget))
        return config.check()

    setup = {"eval_size": args.eval_size, "pool_size": args.pool_size, "limit": args.limit, "catalog": args.catalog}
    results: dict[str, dict[int, list[dict]]] = {}
    configs = {}
    methods = args.methods.split(",")
    if args.random_from:
        earlier = json.loads(Path(args.random_from).read_text())
        rounds_of = lambda c: (c["seed_size"], c["budget"], c["rounds"])  # noqa: E731
        wanted = sampling_config("random", 0)
        assert earlier["setup"] == setup and rounds_of(earlier["configs"]["random"]) == rounds_of(vars(wanted)), "--random-from: another slice, pool or rounds"
        missing = set(seeds) - {int(s) for s in earlier["results"]["random"]}
        assert not missing, f"--random-from has no random run of seeds {sorted(missing)}"
        results["random"] = {s: earlier["results"]["random"][str(s)] for s in seeds}
        configs["random"] = wanted
        methods = [m for m in methods if m != "random"]
        print(f"[random] curves of seeds {seeds} from {args.random_from}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for method in methods:
            for seed in seeds:
                config = sampling_config(method, seed)
                configs[method] = config
                t0 = time.perf_counter()
                run, asked = run_method(f"{method}-seed{seed}", config, teacher.fresh(), pool, heldout, inputs, model_config, text_encoder, Path(tmp))
                assert run.calls == len(asked.asked) <= config.budget
                assert not set(run.labeled) & set(heldout.get_column("product_id").to_list()), "an evaluation product was labeled"
                results.setdefault(method, {})[seed] = [r.evaluation for r in run.rounds]
                print(f"[{method} seed {seed}] {run.calls} calls, {time.perf_counter() - t0:.0f}s", flush=True)

    print()
    verdicts = print_tables(results, configs, heldout.height)
    if args.png:
        write_plot(results, heldout.height, len(seeds), Path(args.png))
    if args.json:
        Path(args.json).write_text(json.dumps({"command": " ".join(["bench/bench_active_sampling.py", *(argv if argv is not None else sys.argv[1:])]), "setup": setup, "results": results, "n_over_2": verdicts, "configs": {m: vars(c) for m, c in configs.items()}}, indent=2, default=float))
    print(f"[end] {time.perf_counter() - started:.0f}s; load average %.2f %.2f %.2f" % os.getloadavg())
    return 0


if __name__ == "__main__":
    sys.exit(main())
