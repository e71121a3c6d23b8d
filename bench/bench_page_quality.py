"""Page quality on the full shared catalog: our pages vs a BM25 keyword baseline.

Command sequence (the model stage must have scored the whole catalog first):

    # 1. the real pipeline on the full catalog, in a temporary data home
    PINLANDING_CATALOG=../shared/datasets/fashion-product-images-small PINLANDING_HOME=/tmp/plfull \
        .venv/bin/python -m pinlanding_assets.cli
    # 2. this benchmark, reading that warehouse
    .venv/bin/python bench/bench_page_quality.py --home /tmp/plfull

What it measures (definitions in ../shared/notes/pinlanding-method.md):

* our pages: collections mined from the warehouse's assigned attributes and titled by the
  current `core.collection_mining` code (template writer, rule-based quality; `--use-run-tables`
  reads the run's `collection_queries`/`landing_pages` instead), matched by the DuckDB
  reference (identical to Spark: pinlanding_tests/core/test_matching_spark.py);
* the baseline: for every page's title, the top 10 products by BM25 over product titles
  (`bench/keyword_baseline.py`);
* collection P@10 of both against the catalog's labels (articleType, baseColour, gender,
  usage, season): the share of a page's top 10 whose labels carry every *labeled* page
  attribute, averaged over pages (`core.evaluation.collection_precision_at_k`); attributes
  of keys without labels (pattern, material, ...) cannot be checked and are reported. A
  content-first vocabulary names product types its own way, so labels are mapped onto the
  page attributes under each rule of `core.evaluation` (strict, lenient, mapped: the
  mapping is learned on the extraction sample's labels, and the held-out figures are
  measured on the other products);
* the same on held-out products only (not in the extraction sample whose labels the model
  was trained on): pages re-ranked within held-out members, BM25 over held-out titles;
* coverage: pages passing the size bar (min page size) and the quality bar (title quality
  >= cutoff), and a sweep of the minimum relevance (coverage vs precision);
* the machine's load average, since the CPU is shared.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pinlanding_assets.core.collection_mining import MiningConfig, collection_attribute_rows, mine_combinations, write_collections  # noqa: E402
from pinlanding_assets.core.evaluation import (  # noqa: E402
    MATCH_RULES,
    catalog_label_attributes,
    collection_precision_at_k,
    comparable_values,
    expand_to_vocabulary,
    majority_mapping,
    per_page_precision_at_k,
)
from bench.keyword_baseline import KeywordBaseline  # noqa: E402
from pinlanding_assets.core.matching import MatchingConfig, match_pages_duckdb  # noqa: E402
from pinlanding_assets.core.publishing import assigned_attributes  # noqa: E402
from pinlanding_assets.core.vocabulary import canonical_labels  # noqa: E402
from pinlanding_assets.core.warehouse import Warehouse  # noqa: E402

K = 10


def load_average() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg())  # 1, 5 and 15 minutes


def rerank_within(pages: pl.DataFrame, product_ids: pl.Series) -> pl.DataFrame:
    """Pages restricted to `product_ids`, ranks renumbered in the original order."""
    kept = pages.filter(pl.col("product_id").is_in(product_ids.implode())).sort("slug", "rank")
    return kept.with_columns(pl.col("rank").rank("ordinal").over("slug").cast(pl.Int64).alias("rank"))


def evaluate(label: str, pages: pl.DataFrame, collections: pl.DataFrame, collection_attrs: pl.DataFrame, products: pl.DataFrame, truths: dict[str, tuple[pl.DataFrame, pl.DataFrame | None]], labeled_keys: set[str]) -> list[dict]:
    """One row per mapping rule: our pages and BM25's pages for the same titles, P@10
    (`truths`: rule -> (truth rows, the page attributes checked or None for all))."""
    slugs = pages.get_column("slug").unique().sort()
    titled = collections.filter(pl.col("slug").is_in(slugs.implode())).select("slug", "title")
    started = time.perf_counter()
    baseline = KeywordBaseline(products.get_column("product_id").to_list(), products.get_column("title").fill_null("").to_list())
    keyword_pages = baseline.top_products(titled.get_column("slug").to_list(), titled.get_column("title").to_list(), K)
    bm25_s = time.perf_counter() - started
    rows = []
    for rule, (truth, comparable) in truths.items():
        ours = per_page_precision_at_k(pages, collection_attrs, truth, K, labeled_keys, comparable)
        theirs = per_page_precision_at_k(keyword_pages, collection_attrs, truth, K, labeled_keys, comparable)
        both = ours.join(theirs, on="slug", how="left", suffix="_bm25").with_columns(pl.col("p_at_k_bm25").fill_null(0.0))
        rows.append({
            "set": label,
            "rule": rule,
            "pages": slugs.len(),
            "checkable_pages": ours.height,
            "p_at_10_ours": round(float(both.get_column("p_at_k").mean() or float("nan")), 4),
            "p_at_10_bm25": round(float(both.get_column("p_at_k_bm25").mean() or float("nan")), 4),
            "ours_better_pages": int((both.get_column("p_at_k") > both.get_column("p_at_k_bm25")).sum()),
            "bm25_better_pages": int((both.get_column("p_at_k") < both.get_column("p_at_k_bm25")).sum()),
            "bm25_seconds": round(bm25_s, 1),
            "_per_page": both,
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default="/tmp/plfull", help="the data home of a full-catalog run")
    parser.add_argument("--use-run-tables", action="store_true", help="evaluate the run's own collection_queries/landing_pages")
    # Defaults: the pipeline's (collection_queries' MiningConfig, landing_pages' MatchingConfig).
    parser.add_argument("--min-support", type=int, default=MiningConfig.min_support)
    parser.add_argument("--quality-cutoff", type=int, default=MiningConfig.quality_cutoff)
    parser.add_argument("--min-relevance", type=float, default=MatchingConfig.min_relevance)
    parser.add_argument("--min-page-size", type=int, default=MatchingConfig.min_page_size)
    parser.add_argument("--max-page-size", type=int, default=MatchingConfig.max_page_size)
    parser.add_argument("--sweep", type=float, nargs="*", default=[0.5, 0.6, 0.7, 0.8, 0.9])
    args = parser.parse_args()

    started = time.perf_counter()
    print(f"load average at start: {load_average()}", flush=True)
    warehouse = Warehouse(Path(args.home) / "warehouse.duckdb")
    products = warehouse.read_table("catalog_products")
    if products.is_empty():
        sys.exit(f"no catalog_products in {args.home}: run the pipeline first (see the docstring)")
    assigned = assigned_attributes(warehouse)
    labels = catalog_label_attributes(products)
    if "in_sample" in products.columns:
        sampled = products.filter(pl.col("in_sample")).get_column("product_id")
    else:  # older runs: the extraction sample is whoever has raw attributes
        sampled = warehouse.read("SELECT DISTINCT product_id FROM raw_attributes").get_column("product_id")
    held_out = products.filter(~pl.col("product_id").is_in(sampled.implode()))
    print(f"catalog: {products.height} products, {held_out.height} held out of the extraction sample; {assigned.height} assigned attributes", flush=True)

    mining = MiningConfig(min_support=args.min_support, quality_cutoff=args.quality_cutoff)
    matching = MatchingConfig(min_relevance=args.min_relevance, min_page_size=args.min_page_size, max_page_size=args.max_page_size)
    if args.use_run_tables:
        collections = warehouse.read_table("collection_queries")
        pages = warehouse.read_table("landing_pages")
    else:
        collections = write_collections(mine_combinations(assigned.select("product_id", "key", "value"), mining), mining)
        pages = match_pages_duckdb(assigned, collection_attribute_rows(collections), matching)
    collection_attrs = collection_attribute_rows(collections)
    kept = collections.filter(pl.col("status") == "kept")
    print(f"collections: {collections.height} mined, {kept.height} kept (quality >= {args.quality_cutoff}); {pages.get_column('slug').n_unique()} pages pass the size bar", flush=True)
    labeled_keys = set(labels.get_column("key").unique().to_list())
    page_attrs = collection_attrs.filter(pl.col("slug").is_in(pages.get_column("slug").unique().implode()))
    checkable_share = page_attrs.get_column("key").is_in(list(labeled_keys)).mean() if page_attrs.height else float("nan")
    print(f"share of page attributes with a catalog label to check them against: {checkable_share:.3f}", flush=True)
    # The "mapped" rule's table: the majority catalog label of each product type the teacher
    # gave the extraction sample (learned there; the held-out rows are the other products).
    teacher_labels = canonical_labels(warehouse.read_table("raw_attributes"), warehouse.read_table("curated_vocabulary"))
    in_sample_labels = labels.filter(pl.col("product_id").is_in(sampled.implode()))
    mapping = majority_mapping(teacher_labels, in_sample_labels)
    vocabulary = collection_attrs.select("key", "value").unique()
    truths = {rule: (expand_to_vocabulary(labels, vocabulary, rule, mapping), None) for rule in MATCH_RULES}
    # As the landing_pages check judges: lenient, on the page attributes the labels can name.
    truths["nameable"] = (truths["lenient"][0], comparable_values(labels, vocabulary))
    print(f"teacher: {warehouse.read('SELECT DISTINCT extractor FROM raw_attributes').get_column('extractor').to_list()}; mapping learned on {in_sample_labels.get_column('product_id').n_unique()} sample products: {mapping.height} product types", flush=True)

    rows = evaluate("all products", pages, collections, collection_attrs, products, truths, labeled_keys)
    held_pages = rerank_within(pages, held_out.get_column("product_id"))
    rows += evaluate("held-out products", held_pages, collections, collection_attrs, held_out, truths, labeled_keys)
    print("\n(rule nameable: lenient, only page attributes whose value names some catalog label; what the landing_pages check measures)")
    print("set                rule      pages  checkable  P@10 ours  P@10 BM25  ours>BM25  BM25>ours")
    for row in rows:
        print(f"{row['set']:18} {row['rule']:8} {row['pages']:>6} {row['checkable_pages']:>10} {row['p_at_10_ours']:>10} {row['p_at_10_bm25']:>10} {row['ours_better_pages']:>10} {row['bm25_better_pages']:>10}")

    lenient = next(row for row in rows if row["rule"] == "lenient")
    per_page = lenient["_per_page"].join(collections.select("slug", "title", "n_attributes"), on="slug", how="left")
    print("\nby number of attributes (all products, lenient rule):")
    print(per_page.group_by("n_attributes").agg(pl.len().alias("pages"), pl.col("p_at_k").mean().round(4).alias("p10_ours"), pl.col("p_at_k_bm25").mean().round(4).alias("p10_bm25")).sort("n_attributes"))
    with pl.Config(fmt_str_lengths=60, tbl_rows=12, tbl_width_chars=140):
        print("\nweakest pages (ours, lenient rule):")
        print(per_page.sort("p_at_k", "slug").head(12).select("title", "p_at_k", "p_at_k_bm25"))

    if not args.use_run_tables and args.sweep:
        print("\nminimum relevance sweep (coverage vs precision, all products, lenient rule):")
        print("min_relevance  pages  P@10 ours")
        for threshold in args.sweep:
            swept = match_pages_duckdb(assigned, collection_attrs, replace(matching, min_relevance=threshold))
            precision = collection_precision_at_k(swept, collection_attrs, truths["lenient"][0], K, labeled_keys)
            print(f"{threshold:>13} {swept.get_column('slug').n_unique():>6} {precision:>10.4f}", flush=True)
    print(f"\ndone in {time.perf_counter() - started:.0f}s; load average at end: {load_average()}")


if __name__ == "__main__":
    main()
