"""Style-concept pages on a full-catalog run: decomposition, pages and page P@10.

    .venv/bin/python bench/bench_concept_pages.py --home /tmp/plfull

Reads a finished data home's warehouse (curated_vocabulary, product_attribute_scores,
catalog_products, and its landing_pages/collection_queries for the mined pages' figure),
decomposes the concepts of `data/style_concepts.yaml` with the offline decomposer (MiniLM;
the pipeline's default without an LLM key), matches each combination with the DuckDB
reference engine (identical to Spark) and merges them into concept pages exactly as
`landing_pages` does (`core.style_concepts`).

P@10 of a concept page: the share of its top 10 products whose catalog labels carry every
attribute of the combination the product matched (lenient mapping, only attribute values the
labels can name: as the `landing_pages` check judges mined pages); attributes of unlabeled
keys (material, pattern, style) cannot be checked, so a product matched on "material
leather + product type handbag" is judged on its product type alone. Printed beside it: the
same figure for the run's mined pages.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pinlanding_assets.core.evaluation import (  # noqa: E402
    catalog_label_attributes,
    comparable_values,
    concept_precision_at_k,
    expand_to_vocabulary,
    precision_against_catalog_labels,
)
from pinlanding_assets.core.collection_mining import collection_attribute_rows  # noqa: E402
from pinlanding_assets.core.matching import MatchingConfig, match_pages_duckdb  # noqa: E402
from pinlanding_assets.core.publishing import assigned_attributes  # noqa: E402
from pinlanding_assets.core.style_concepts import (  # noqa: E402
    ConceptConfig,
    OfflineDecomposer,
    Vocabulary,
    combination_attribute_rows,
    combination_matching,
    concept_pages,
    concepts_without_pages,
    decompose_concepts,
    describe_combination,
    load_concepts,
)
from pinlanding_assets.core.vocabulary import kept_attributes, minilm_encoder  # noqa: E402
from pinlanding_assets.core.warehouse import Warehouse  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default="/tmp/plfull", help="the data home of a full-catalog run")
    parser.add_argument("--concepts", default=ConceptConfig.concepts_file)
    parser.add_argument("--min-similarity", type=float, default=ConceptConfig.min_similarity)
    parser.add_argument("--min-support", type=int, default=ConceptConfig.min_support)
    args = parser.parse_args()

    started = time.perf_counter()
    warehouse = Warehouse(Path(args.home) / "warehouse.duckdb")
    products = warehouse.read_table("catalog_products")
    assigned = assigned_attributes(warehouse)
    vocabulary = Vocabulary.build(kept_attributes(warehouse.read_table("curated_vocabulary")), assigned)
    config = ConceptConfig(concepts_file=args.concepts, min_similarity=args.min_similarity, min_support=args.min_support)
    matching = MatchingConfig()
    concepts = load_concepts(config.concepts_file)
    collections = warehouse.read_table("collection_queries")
    taken = set(collections.get_column("slug").to_list()) if collections.height else set()
    decomposer = OfflineDecomposer(minilm_encoder(), vocabulary, config)
    table = decompose_concepts(concepts, decomposer, vocabulary, config, taken)
    decomposed_s = time.perf_counter() - started
    rows = combination_attribute_rows(table)
    pages = concept_pages(match_pages_duckdb(assigned, rows, combination_matching(matching)), table, matching)

    labels = catalog_label_attributes(products)
    values = rows.select("key", "value").unique()
    truth = expand_to_vocabulary(labels, values, "lenient")
    per_page = dict(concept_precision_at_k(pages, rows, truth, 10, set(labels.get_column("key").unique().to_list()), comparable_values(labels, values)).iter_rows())
    sizes = dict(pages.group_by("slug").len().iter_rows())

    print(f"catalog: {products.height} products; {len(concepts)} concepts; decomposed in {decomposed_s:.1f}s (MiniLM load included)")
    print(f"concepts without a valid combination: {concepts_without_pages(table) or 'none'}")
    print("\n| concept | combinations (support) | products | P@10 |")
    print("|---|---|---:|---:|")
    kept = table.filter(pl.col("status") == "kept")
    for (slug,), frame in kept.group_by("concept_slug", maintain_order=True):
        combos = "; ".join(f"{describe_combination(a)} ({s})" for a, s in frame.select("attributes", "support").iter_rows())
        p10 = per_page.get(slug)
        print(f"| {frame.get_column('concept')[0]} | {combos} | {sizes.get(slug, 0)} | {'n/a' if p10 is None else f'{p10:.2f}'} |")
    judged = [v for v in per_page.values()]
    print(f"\nconcept pages: {len(sizes)}; mean P@10 over {len(judged)} judged: {sum(judged) / len(judged):.3f}" if judged else "\nno concept page could be judged")
    run_pages = warehouse.read_table("landing_pages")
    if run_pages.height and collections.height:
        mined = precision_against_catalog_labels(run_pages, collection_attribute_rows(collections), products)
        print(f"the run's mined pages: {run_pages.get_column('slug').n_unique()}, P@10 {mined:.3f} (same judge)")
    print(f"done in {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
