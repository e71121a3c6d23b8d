"""Extraction + curation on the full shared catalog with the offline teacher.

    .venv/bin/python bench/bench_extraction_curation.py [--catalog DIR] [--share 1.0] [--pixel-sample 2000] [--teacher content]

Prints, with how each was measured:
* time per stage (catalog load + validation, extraction, MiniLM load, curation);
* the product types discovered per shard from its own titles;
* per key: the teacher's coverage and its agreement with the catalog's labels (lenient
  for the product type; the labels are read for this figure only, never by the teacher
  unless `--teacher labels`);
* attributes per product (mean / median / by source);
* vocabulary size after each curation step, per key (`curation_funnel`);
* the pixel colour against the catalog's baseColour on a sample: the fixed palette
  (`dominant_color`) and the namer calibrated on the shard's titled products (`PixelColors`).
No network; the shared dataset is read in place.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pinlanding_assets.core.catalog import TeacherInputs, load_catalog, locate_catalog  # noqa: E402
from pinlanding_assets.core.evaluation import teacher_agreement  # noqa: E402
from pinlanding_assets.core.extraction import ExtractionResult, OfflineExtractor, SampleSpec, dominant_color, select_sample  # noqa: E402
from pinlanding_assets.core.settings import SHARED_DATASET, VOCABULARY_OVERRIDES  # noqa: E402
from pinlanding_assets.core.vocabulary import CurationConfig, curate_vocabulary, curation_funnel, kept_attributes, load_overrides, minilm_encoder  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--catalog", default=str(SHARED_DATASET))
    parser.add_argument("--share", type=float, default=1.0, help="share of each shard sent to the extractor")
    parser.add_argument("--pixel-sample", type=int, default=2000)
    parser.add_argument("--teacher", choices=("content", "content-only", "labels"), default="content",
                        help="content: title, description, image, category; content-only: without category; labels: also the label columns (upper bound)")
    args = parser.parse_args()
    inputs = {
        "content": TeacherInputs(),
        "content-only": TeacherInputs(()),
        "labels": TeacherInputs(("category", "label_product_type", "label_color", "label_gender", "label_occasion", "label_season")),
    }[args.teacher]
    pl.Config.set_tbl_rows(60)
    pl.Config.set_tbl_width_chars(200)
    timings: dict[str, tuple[float, float]] = {}  # stage -> (wall s, CPU s of this process)

    class stage:
        """Times a block: wall clock and this process's CPU time (the CPU figure is robust
        to other jobs sharing the machine)."""

        def __init__(self, name: str):
            self.name = name

        def __enter__(self):
            self.wall, self.cpu = time.perf_counter(), time.process_time()

        def __exit__(self, *exc):
            timings[self.name] = (time.perf_counter() - self.wall, time.process_time() - self.cpu)

    with stage("catalog load + validation (decodes every image)"):
        loaded = load_catalog(locate_catalog(args.catalog))
    products = loaded.products
    print(f"catalog: {products.height} valid products, {loaded.quarantine.height} quarantined, shards {products.get_column('shard').n_unique()}")

    teachers: dict[str, OfflineExtractor] = {}
    with stage("type discovery + pixel-colour calibration, per shard"):
        for (shard,), group in products.group_by("shard", maintain_order=True):
            teachers[shard] = OfflineExtractor.for_shard(group, inputs)
    with stage("sampling + offline extraction"):
        samples, results = [], []
        for (shard,), group in products.group_by("shard", maintain_order=True):
            samples.append(select_sample(group, SampleSpec(share=args.share, min_count=0)))
            results.append(teachers[shard].extract(samples[-1]))
        sample = pl.concat(samples)
        result = ExtractionResult(pl.concat([r.attributes for r in results]), pl.concat([r.quarantine for r in results]))
    attributes = result.attributes
    print(f"teacher reads: {inputs.describe()}")
    print(f"extracted: {sample.height} sampled products (share {args.share}), {attributes.height} attribute rows, {result.quarantine.height} quarantined")
    print("\nproduct types discovered per shard (from its titles; most frequent first):")
    for shard, teacher in teachers.items():
        print(f"  {shard} ({len(teacher.product_types)}): {', '.join(t.value for t in teacher.product_types[:25])}{' ...' if len(teacher.product_types) > 25 else ''}")
    print("\nper key: coverage of the sample, agreement with the catalog's labels where it has some (lenient for the type):")
    for key, figures in teacher_agreement(attributes, sample).items():
        print(f"  {key:13} coverage {figures['coverage']:.3f}" + (f"  agreement {figures['agreement']:.3f} on {figures['checked']}" if "agreement" in figures else ""))

    per_product = attributes.group_by("product_id").len()
    print("\nattributes per product (rows per labeled product):")
    print(f"  mean {per_product.get_column('len').mean():.2f}, median {per_product.get_column('len').median():.0f}, "
          f"min {per_product.get_column('len').min()}, max {per_product.get_column('len').max()}")
    by_source = attributes.group_by(pl.col("source").str.split(":").list.first().alias("source")).len().sort("source")
    for source, count in by_source.iter_rows():
        print(f"  from {source}: {count / per_product.height:.2f} per product ({count} rows)")

    with stage("MiniLM load (offline, incl. torch/sentence-transformers import)"):
        encoder = minilm_encoder()
        encoder(["warm up"])

    overrides = load_overrides(VOCABULARY_OVERRIDES)
    config = CurationConfig()
    with stage("curation (normalize, MiniLM merge, frequency, rule judge, denylist, overrides)"):
        vocabulary = curate_vocabulary(attributes, config, encoder=encoder, overrides=overrides)
    with stage("curation without the encoder (spelling-only merge), for comparison"):
        curate_vocabulary(attributes, config, encoder=None, overrides=overrides)

    funnel = curation_funnel(vocabulary)
    total = funnel.select(pl.lit("ALL").alias("key"), *[pl.col(c).sum() for c in funnel.columns if c != "key"])
    print(f"\nvocabulary size after each step (distinct values per key; CurationConfig defaults: min_count {config.min_count}, "
          f"min_share {config.min_share}, merge cosine >= {config.merge_min_cosine} or spelled alike; overrides: {VOCABULARY_OVERRIDES.name}):")
    print(pl.concat([funnel, total]))
    print("\ndropped values by step:", dict(vocabulary.filter(pl.col("status") == "dropped").group_by("step").len().sort("step").iter_rows()))
    for step in ("judge", "safety", "override"):
        decided = vocabulary.filter(pl.col("step") == step).select("key", "value", "status", "reason")
        print(f"decided by {step} ({decided.height}):", decided.rows())
    merged = vocabulary.filter(pl.col("step") == "merge").select("key", "value", "canonical", "similarity")
    print(f"merged values ({merged.height}):", merged.head(15).rows())
    print(f"kept attributes: {kept_attributes(vocabulary).height}")

    with_color = products.filter(pl.col("label_color").is_not_null())
    pixel_sample = select_sample(with_color, SampleSpec(share=1.0, min_count=0, max_count=args.pixel_sample, seed=7))
    with stage(f"dominant_color on {pixel_sample.height} images"):
        measured = [dominant_color(p) for p in pixel_sample.get_column("image_path")]
    with stage(f"PixelColors (calibrated on the shard's titled products) on {pixel_sample.height} images"):
        learned = [teachers[shard].pixel_colors.name(p) for shard, p in pixel_sample.select("shard", "image_path").iter_rows()]
    truth = pixel_sample.get_column("label_color").to_list()
    for name, names in (("fixed palette (dominant_color)", measured), ("calibrated on titles (PixelColors)", learned)):
        agree = sum(m == t for m, t in zip(names, truth)) / pixel_sample.height
        print(f"\npixel colour == catalog baseColour on {pixel_sample.height} products, {name}: {agree:.1%} (exact name)")

    print("\ntime per stage (s; wall clock / CPU of this process; 2-core machine, possibly shared):")
    for name, (wall, cpu) in timings.items():
        print(f"  {name}: {wall:.1f} / {cpu:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
