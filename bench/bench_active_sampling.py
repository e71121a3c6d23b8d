"""Benchmark of uncertainty-driven teacher sampling against random sampling (issue 16).

    .venv/bin/python bench/bench_active_sampling.py [--budget 4000] [--seed-size 250] [--rounds 4]
        [--eval-size 5000] [--pool-size 15000] [--limit N] [--png out.png] [--json out.json]

On the shared catalog, with the offline teacher standing in for the VLM (each product it
labels counts as one call; it reads content only, never the label columns):

* a fixed evaluation slice (`--eval-size` products drawn by a seeded hash) is never labeled;
  the candidate pool is up to `--pool-size` other products (same pool for both methods);
* each method runs `active_sampling.active_sample`: a random seed sample, then rounds that
  grow the labeled set geometrically to the budget (250 -> 500 -> 1000 -> 2000 -> 4000);
  random sampling takes the next products of its hash order, uncertainty sampling asks
  `choose_next` on the current model's view of the pool (the pool encoded once per round);
* after every round the vocabulary is curated from the teacher's answers so far and a model
  is fitted exactly as `clip_model` fits it (`fit_dual_encoder`, settings through
  ModelConfig/SamplingConfig run config, as the assets build them) and judged on the
  evaluation slice against the catalog labels: per-key top-1 of the published scores
  (lenient mapping; product type also "mapped") and their mean over the five keys.

It prints the table, whether uncertainty reaches with N/2 calls what random reaches with N,
and writes the plot of mean top-1 against calls.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pinlanding_assets.core.active_sampling import ActiveSamplingRun, SamplingConfig, active_sample, pool_scores  # noqa: E402
from pinlanding_assets.core.catalog import TeacherInputs, load_catalog, locate_catalog  # noqa: E402
from pinlanding_assets.core.clip_model import ModelSpec, embed_products, load_encoder  # noqa: E402
from pinlanding_assets.core.evaluation import CATALOG_LABELS  # noqa: E402
from pinlanding_assets.core.extraction import OfflineExtractor, SampleSpec, select_sample  # noqa: E402
from pinlanding_assets.core.model_fitting import PUBLISHED, AssignmentConfig, fit_dual_encoder, training_inputs  # noqa: E402
from pinlanding_assets.core.plots import quality_vs_calls_png  # noqa: E402
from pinlanding_assets.core.scoring import ScoringModel  # noqa: E402
from pinlanding_assets.core.settings import SHARED_DATASET  # noqa: E402
from pinlanding_assets.core.training import TrainingConfig  # noqa: E402
from pinlanding_assets.core.vocabulary import CurationConfig, curate_vocabulary, minilm_encoder  # noqa: E402
from pinlanding_assets.defs.extraction_assets import ExtractionConfig  # noqa: E402
from pinlanding_assets.defs.model_assets import ModelConfig  # noqa: E402

REPORTED_KEYS = ("product_type", "color", "gender", "occasion", "season")
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
            "train_seconds": round(fitted.training.seconds, 1),
        }
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", default=str(SHARED_DATASET))
    parser.add_argument("--budget", type=int)
    parser.add_argument("--seed-size", type=int)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--measure", choices=["margin", "entropy"])
    parser.add_argument("--uncertainty-of", choices=["encoder", "published"])
    parser.add_argument("--type-quota-power", type=float)
    parser.add_argument("--no-diversity", action="store_const", const=False, dest="diversity_by_type")
    parser.add_argument("--methods", default="random,uncertainty")
    parser.add_argument("--eval-size", type=int, default=5000)
    parser.add_argument("--pool-size", type=int, default=15000)
    parser.add_argument("--limit", type=int, help="only the first N products of the catalog (a slice)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--png", default="bench/active_sampling.png")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    # Run config as the pipeline takes it: SamplingConfig lives in raw_attributes' config
    # (prefix active_), model settings in clip_model's.
    sampling_fields = {f"active_{k}": v for k, v in {"budget": args.budget, "seed_size": args.seed_size, "rounds": args.rounds, "measure": args.measure, "uncertainty_of": args.uncertainty_of, "type_quota_power": args.type_quota_power, "diversity_by_type": args.diversity_by_type}.items() if v is not None}
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
    results: dict[str, list[dict]] = {}
    configs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods.split(","):
            config = ExtractionConfig(active_sampling=method, **sampling_fields).to_core(SamplingConfig).check()
            configs[method] = config
            t0 = time.perf_counter()
            run, asked = run_method(method, config, teacher.fresh(), pool, heldout, inputs, model_config, text_encoder, Path(tmp))
            assert run.calls == len(asked.asked) <= config.budget
            assert not set(run.labeled) & set(heldout.get_column("product_id").to_list()), "an evaluation product was labeled"
            results[method] = [r.evaluation for r in run.rounds]
            print(f"[{method}] {run.calls} calls, {time.perf_counter() - t0:.0f}s", flush=True)

    print()
    print(f"held-out top-1 on {heldout.height} products never labeled, against catalog labels (lenient; product type also mapped), published scores")
    columns = ["calls", "mean_top1", *(f"top1/{k}" for k in REPORTED_KEYS), "top1/product_type (mapped)"]
    for method, rows in results.items():
        print(f"  {method}: {configs[method]}")
        print("    " + "  ".join(f"{c.replace('top1/', ''):>12}" for c in columns))
        for row in rows:
            print("    " + "  ".join(f"{row[c]:12d}" if c == "calls" else f"{row[c]:12.4f}" for c in columns))
    verdict = {}
    if "random" in results and "uncertainty" in results:
        random_curve = [(r["calls"], r["mean_top1"]) for r in results["random"]]
        active_curve = [(r["calls"], r["mean_top1"]) for r in results["uncertainty"]]
        print("  N/2 target (mean top-1): calls uncertainty needs to reach random's quality at N")
        for calls, quality in random_curve:
            needed = calls_to_reach(active_curve, quality)
            verdict[calls] = {"random_quality": quality, "uncertainty_calls_needed": needed, "met": needed is not None and needed <= calls / 2}
            print(f"    N={calls:5d}: random {quality:.4f}; uncertainty reaches it at {'never (within budget)' if needed is None else f'{needed:.0f}'} calls -> N/2 target {'met' if verdict[calls]['met'] else 'not met'}")
    if args.png:
        curves = {m: [(r["calls"], r["mean_top1"]) for r in rows] for m, rows in results.items()}
        Path(args.png).write_bytes(quality_vs_calls_png(curves, "held-out mean top-1 (5 keys, catalog labels)", f"Teacher sampling: random vs uncertainty ({heldout.height} held-out products)"))
        print(f"plot: {args.png}")
    if args.json:
        Path(args.json).write_text(json.dumps({"command": " ".join(["bench/bench_active_sampling.py", *(argv if argv is not None else sys.argv[1:])]), "results": results, "n_over_2": verdict, "configs": {m: vars(c) for m, c in configs.items()}}, indent=2, default=float))
    print(f"[end] {time.perf_counter() - started:.0f}s; load average %.2f %.2f %.2f" % os.getloadavg())
    return 0


if __name__ == "__main__":
    sys.exit(main())
