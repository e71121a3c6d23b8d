"""Which pages search engines are told about, and the page-quality report of a publish.

A thin page (few products, or products the model is unsure of) still renders, so links to it
work, but carries `noindex` and stays out of the sitemap: a merchant does not ask search
engines to index it. The bar uses only what publishing knows (the page size and the
relevance of its top products), never catalog labels.

The report (`quality_report`, in the `landing_pages` metadata): pages matched, merged into a
near-duplicate (`page_dedup`), published, indexed and held back as thin; the distribution of
page P@10 against catalog labels (labels are read here for the figure only); catalog
coverage (share of products on some page, on some indexed page); and the worst pages (lowest
P@10, then lowest relevance), for a person to look at.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from .evaluation import catalog_label_attributes, comparable_values, expand_to_vocabulary, per_page_precision_at_k

INDEXING_SCHEMA = {"slug": pl.String, "n_products": pl.Int64, "top_relevance": pl.Float64, "indexed": pl.Boolean, "reason": pl.String}
TOP_K = 10


@dataclass(frozen=True)
class IndexingConfig:
    min_indexed_products: int = 12  # a page with fewer products is noindex and left out of the sitemap
    min_indexed_relevance: float = 0.5  # ... so is one whose top-10 products' mean relevance is below this
    worst_pages_reported: int = 15  # pages listed in the quality report, worst first


def indexing(pages: pl.DataFrame, config: IndexingConfig = IndexingConfig()) -> pl.DataFrame:
    """INDEXING_SCHEMA: per page, its size, the mean relevance of its top 10, and whether it
    is indexed (else why not). pages: slug, product_id, relevance, rank."""
    if pages.is_empty():
        return pl.DataFrame(schema=INDEXING_SCHEMA)
    stats = pages.group_by("slug").agg(
        pl.len().cast(pl.Int64).alias("n_products"),
        pl.col("relevance").filter(pl.col("rank") <= TOP_K).mean().cast(pl.Float64).alias("top_relevance"),
    )
    few = pl.col("n_products") < config.min_indexed_products
    unsure = pl.col("top_relevance") < config.min_indexed_relevance
    reason = (
        pl.when(few)
        .then(pl.format("{} products < {}", pl.col("n_products"), pl.lit(config.min_indexed_products)))
        .when(unsure)
        .then(pl.format("top-10 relevance {} < {}", pl.col("top_relevance").round(3), pl.lit(config.min_indexed_relevance)))
        .otherwise(None)
    )
    return stats.with_columns(reason.alias("reason")).with_columns(pl.col("reason").is_null().alias("indexed")).select(list(INDEXING_SCHEMA)).sort("slug")


def page_precision(pages: pl.DataFrame, collection_attrs: pl.DataFrame, products: pl.DataFrame) -> pl.DataFrame:
    """slug -> p_at_k against catalog labels (as `evaluation.precision_against_catalog_labels`,
    per page); empty without labels."""
    labels = catalog_label_attributes(products)
    if labels.is_empty() or pages.is_empty():
        return pl.DataFrame(schema={"slug": pl.String, "p_at_k": pl.Float64})
    page_values = collection_attrs.select("key", "value").unique()
    truth = expand_to_vocabulary(labels, page_values, "lenient")
    labeled_keys = set(labels.get_column("key").unique().to_list())
    return per_page_precision_at_k(pages, collection_attrs, truth, TOP_K, labeled_keys, comparable_values(labels, page_values))


@dataclass(frozen=True)
class QualityReport:
    pages_matched: int
    pages_merged: int
    pages_published: int
    pages_indexed: int
    pages_noindex: int
    p_at_10: dict[str, float | int | None]  # pages checked, mean, quantiles, histogram
    coverage: dict[str, float | int]
    worst_pages: list[dict]

    def as_metadata(self) -> dict:
        return {
            "quality_pages": {
                "matched": self.pages_matched,
                "merged": self.pages_merged,
                "published": self.pages_published,
                "indexed": self.pages_indexed,
                "noindex (thin)": self.pages_noindex,
            },
            "quality_p_at_10": self.p_at_10,
            "quality_coverage": self.coverage,
            "quality_worst_pages": self.worst_pages,
        }


def _distribution(values: pl.Series) -> dict[str, float | int | None]:
    if not values.len():
        return {"pages_checked": 0}
    histogram = {f"{lo / 10:.1f}-{(lo + 1) / 10:.1f}": int(((values >= lo / 10) & ((values < (lo + 1) / 10) | (lo == 9))).sum()) for lo in range(10)}
    return {
        "pages_checked": values.len(),
        "mean": round(float(values.mean()), 4),
        "p10": round(float(values.quantile(0.1)), 4),
        "median": round(float(values.median()), 4),
        "p90": round(float(values.quantile(0.9)), 4),
        "histogram": histogram,
    }


def quality_report(
    pages_matched: int,
    merges: pl.DataFrame,
    pages: pl.DataFrame,
    index: pl.DataFrame,
    collections: pl.DataFrame,
    collection_attrs: pl.DataFrame,
    products: pl.DataFrame,
    config: IndexingConfig = IndexingConfig(),
) -> QualityReport:
    """The report of one publish (see the module doc). pages: as published; index:
    `indexing(pages)`; products: the catalog (its labels judge P@10, its size is coverage's
    denominator)."""
    precision = page_precision(pages, collection_attrs, products)
    indexed_slugs = index.filter(pl.col("indexed")).get_column("slug")
    n_catalog = products.height
    on_pages = pages.get_column("product_id").n_unique()
    on_indexed = pages.filter(pl.col("slug").is_in(indexed_slugs.implode())).get_column("product_id").n_unique()
    coverage = {
        "catalog_products": n_catalog,
        "on_a_page": on_pages,
        "on_an_indexed_page": on_indexed,
        "share_on_a_page": round(on_pages / n_catalog, 4) if n_catalog else 0.0,
        "share_on_an_indexed_page": round(on_indexed / n_catalog, 4) if n_catalog else 0.0,
    }
    titles = collections.select("slug", "title") if collections.height else pl.DataFrame(schema={"slug": pl.String, "title": pl.String})
    worst = (
        index.join(precision, on="slug", how="left")
        .join(titles, on="slug", how="left")
        .sort(["p_at_k", "top_relevance", "slug"], nulls_last=True)
        .head(config.worst_pages_reported)
    )
    worst_pages = [
        {
            "slug": r["slug"],
            "title": r["title"],
            "p_at_10": None if r["p_at_k"] is None else round(r["p_at_k"], 3),
            "products": r["n_products"],
            "top_relevance": round(r["top_relevance"], 3),
            "indexed": r["indexed"],
            "why_noindex": r["reason"],
        }
        for r in worst.iter_rows(named=True)
    ]
    n_indexed = indexed_slugs.len()
    return QualityReport(
        pages_matched, merges.height, index.height, n_indexed, index.height - n_indexed, _distribution(precision.get_column("p_at_k")), coverage, worst_pages
    )
