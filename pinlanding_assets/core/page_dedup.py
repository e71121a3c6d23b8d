"""Pages that show nearly the same products are one page: overlap after matching.

Mining merges combinations with *identical* supporting products; after matching (ranking,
the relevance bar, the page-size cut) many more pages end up nearly the same: "Unisex Black
Backpacks" and "Black Backpacks" when nearly every black backpack is unisex. A merchant
publishes one of them. Two pages whose product sets have a Jaccard index of at least
`max_jaccard` are merged: the page kept is the more general one (fewer attributes), then the
better-scored title, then the bigger page, then the slug (so the outcome is deterministic);
the other slug redirects to it (`page_refresh.update_retired`, `site`).

`page_overlaps` (the shared-product counts of every pair of pages with a product in common)
also feeds the related links (`related_pages`).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

OVERLAP_SCHEMA = {"slug_a": pl.String, "slug_b": pl.String, "shared": pl.Int64, "size_a": pl.Int64, "size_b": pl.Int64, "jaccard": pl.Float64}
MERGE_SCHEMA = {"slug": pl.String, "title": pl.String, "merged_into": pl.String, "jaccard": pl.Float64}


@dataclass(frozen=True)
class DedupConfig:
    max_jaccard: float = 0.8  # two pages sharing at least this share of their products (Jaccard) are merged into one

    def __post_init__(self) -> None:
        if not 0.0 < self.max_jaccard <= 1.0:
            raise ValueError(f"max_jaccard must be in (0, 1], got {self.max_jaccard}")


def page_overlaps(pages: pl.DataFrame) -> pl.DataFrame:
    """One row per unordered pair of pages sharing a product (slug_a < slug_b): shared
    products, both sizes and the Jaccard index. pages: slug, product_id."""
    members = pages.select("slug", "product_id").unique()
    if members.is_empty():
        return pl.DataFrame(schema=OVERLAP_SCHEMA)
    sizes = members.group_by("slug").agg(pl.len().cast(pl.Int64).alias("size"))
    pairs = (
        members.join(members, on="product_id", suffix="_b")
        .filter(pl.col("slug") < pl.col("slug_b"))
        .group_by("slug", "slug_b")
        .agg(pl.len().cast(pl.Int64).alias("shared"))
        .rename({"slug": "slug_a"})
    )
    return (
        pairs.join(sizes.rename({"slug": "slug_a", "size": "size_a"}), on="slug_a")
        .join(sizes.rename({"slug": "slug_b", "size": "size_b"}), on="slug_b")
        .with_columns((pl.col("shared") / (pl.col("size_a") + pl.col("size_b") - pl.col("shared"))).alias("jaccard"))
        .select(list(OVERLAP_SCHEMA))
        .sort("slug_a", "slug_b")
    )


@dataclass(frozen=True)
class Dedup:
    pages: pl.DataFrame  # the pages kept (PAGE_SCHEMA)
    merges: pl.DataFrame  # MERGE_SCHEMA: one row per page merged into another
    overlaps: pl.DataFrame  # OVERLAP_SCHEMA, of the pages before merging

    @property
    def merged_into(self) -> dict[str, str]:
        return dict(self.merges.select("slug", "merged_into").iter_rows())


def keep_order(collections: pl.DataFrame, pages: pl.DataFrame) -> list[str]:
    """Slugs of the pages, the one to keep first: fewest attributes (the more general page),
    then highest title quality, then most products, then slug."""
    sizes = pages.group_by("slug").agg(pl.len().alias("n_products"))
    info = sizes.join(collections.select("slug", "attributes", *(["quality"] if "quality" in collections.columns else [])), on="slug", how="left")
    info = info.with_columns(
        pl.col("attributes").list.len().fill_null(0).alias("n_attributes"),
        (pl.col("quality") if "quality" in info.columns else pl.lit(0)).fill_null(0).alias("quality"),
    )
    return info.sort(["n_attributes", "quality", "n_products", "slug"], descending=[False, True, True, False]).get_column("slug").to_list()


def dedup_pages(pages: pl.DataFrame, collections: pl.DataFrame, config: DedupConfig = DedupConfig()) -> Dedup:
    """Merge pages whose product sets overlap at `max_jaccard` or more (see the module doc).
    Greedy in `keep_order`: a page is merged into the first kept page it overlaps that much;
    a page merged away never absorbs another."""
    overlaps = page_overlaps(pages)
    near = overlaps.filter(pl.col("jaccard") >= config.max_jaccard)
    neighbours: dict[str, list[tuple[str, float]]] = {}
    for a, b, jaccard in near.select("slug_a", "slug_b", "jaccard").iter_rows():
        neighbours.setdefault(a, []).append((b, jaccard))
        neighbours.setdefault(b, []).append((a, jaccard))
    order = keep_order(collections, pages)
    position = {slug: i for i, slug in enumerate(order)}
    kept: set[str] = set()
    merges = []
    titles = dict(collections.select("slug", "title").iter_rows()) if collections.height else {}
    for slug in order:
        targets = sorted((position[other], other, jaccard) for other, jaccard in neighbours.get(slug, []) if other in kept)
        if targets:
            _, target, jaccard = targets[0]
            merges.append({"slug": slug, "title": titles.get(slug), "merged_into": target, "jaccard": jaccard})
        else:
            kept.add(slug)
    merge_frame = pl.DataFrame(merges, schema=MERGE_SCHEMA)
    kept_pages = pages.filter(~pl.col("slug").is_in(merge_frame.get_column("slug").implode()))
    return Dedup(kept_pages, merge_frame.sort("slug"), overlaps)
