"""Near-duplicate pages merge after matching, related links by relation, the index bar and
the page-quality report."""

from __future__ import annotations

import polars as pl

from pinlanding_assets.core.page_dedup import DedupConfig, dedup_pages, page_overlaps
from pinlanding_assets.core.page_quality import IndexingConfig, indexing, quality_report
from pinlanding_assets.core.related_pages import related_collections

ATTR_TYPE = pl.List(pl.Struct({"key": pl.String, "value": pl.String}))


def collections(rows: dict[str, tuple[str, list[tuple[str, str]], int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "slug": list(rows),
            "title": [t for t, _, _ in rows.values()],
            "attributes": [[{"key": k, "value": v} for k, v in attrs] for _, attrs, _ in rows.values()],
            "quality": [q for _, _, q in rows.values()],
        },
        schema={"slug": pl.String, "title": pl.String, "attributes": ATTR_TYPE, "quality": pl.Int64},
    )


def pages(members: dict[str, list[str]], relevance: float = 0.9) -> pl.DataFrame:
    rows = [(slug, pid, relevance - 0.001 * rank, rank) for slug, ids in members.items() for rank, pid in enumerate(ids, 1)]
    return pl.DataFrame(rows, schema={"slug": pl.String, "product_id": pl.String, "relevance": pl.Float64, "rank": pl.Int64}, orient="row")


BLACK = [("product_type", "backpack"), ("color", "black")]
COLLECTIONS = collections(
    {
        "black-backpacks": ("Black Backpacks", BLACK, 5),
        "unisex-black-backpacks": ("Unisex Black Backpacks", BLACK + [("gender", "unisex")], 5),
        "black-backpacks-for-men": ("Black Backpacks for Men", BLACK + [("gender", "men")], 5),
        "backpacks": ("Backpacks", [("product_type", "backpack")], 5),
        "red-backpacks": ("Red Backpacks", [("product_type", "backpack"), ("color", "red")], 5),
        "black-watches": ("Black Watches", [("product_type", "watch"), ("color", "black")], 5),
    }
)
ids = [f"p{i:02d}" for i in range(40)]
PAGES = pages(
    {
        "black-backpacks": ids[:20],
        "unisex-black-backpacks": ids[:18],  # 18/20 = 0.9 of the black ones: a near-duplicate
        "black-backpacks-for-men": ids[10:20],  # 10/20 = 0.5: a page of its own
        "backpacks": ids[:30],
        "red-backpacks": ids[20:30],
        "black-watches": ids[30:40],
    }
)


def test_overlaps_count_shared_products_and_jaccard() -> None:
    overlaps = page_overlaps(PAGES)
    pair = overlaps.filter((pl.col("slug_a") == "black-backpacks") & (pl.col("slug_b") == "unisex-black-backpacks")).row(0, named=True)
    assert (pair["shared"], pair["size_a"], pair["size_b"], pair["jaccard"]) == (18, 20, 18, 0.9)
    assert overlaps.filter(pl.col("slug_a") == "black-watches").is_empty() and overlaps.filter(pl.col("slug_b") == "black-watches").is_empty()


def test_near_duplicates_merge_into_the_more_general_page() -> None:
    dedup = dedup_pages(PAGES, COLLECTIONS)
    assert dedup.merged_into == {"unisex-black-backpacks": "black-backpacks"}
    assert dedup.merges.row(0, named=True)["jaccard"] == 0.9 and dedup.merges.row(0, named=True)["title"] == "Unisex Black Backpacks"
    assert set(dedup.pages.get_column("slug").unique()) == {"black-backpacks", "black-backpacks-for-men", "backpacks", "red-backpacks", "black-watches"}
    # "Backpacks" shares 20 of 30 with "Black Backpacks" (0.67): both stay at 0.8, one goes at 0.6
    looser = dedup_pages(PAGES, COLLECTIONS, DedupConfig(max_jaccard=0.6))
    assert looser.merged_into["black-backpacks"] == "backpacks"
    # Equally general pages: the better-scored title stays, whatever the slugs.
    tied = collections({"b-shirts": ("Shirts B", [("product_type", "shirt"), ("color", "blue")], 4), "a-shirts": ("Shirts A", [("product_type", "shirt"), ("pattern", "solid")], 5)})
    same = pages({"a-shirts": ids[:10], "b-shirts": ids[:10]})
    assert dedup_pages(same, tied).merged_into == {"b-shirts": "a-shirts"}
    assert dedup_pages(same, tied.with_columns(pl.lit(5).alias("quality"))).merged_into == {"b-shirts": "a-shirts"}  # then by slug


def test_related_links_are_broader_narrower_other_colours_and_shared_products() -> None:
    kept = dedup_pages(PAGES, COLLECTIONS).pages
    shown = COLLECTIONS.filter(pl.col("slug").is_in(kept.get_column("slug").unique().implode()))
    sizes = dict(kept.group_by("slug").len().iter_rows())
    related = related_collections(shown, sizes, page_overlaps(kept))

    def links(slug: str, relation: str) -> list[str]:
        return related.filter((pl.col("slug") == slug) & (pl.col("relation") == relation)).sort("position").get_column("related_slug").to_list()

    assert links("black-backpacks", "broader") == ["backpacks"]
    assert links("black-backpacks", "narrower") == ["black-backpacks-for-men"]
    assert links("black-backpacks", "other colours") == ["red-backpacks"]
    assert links("black-backpacks-for-men", "broader") == ["black-backpacks"]
    assert links("backpacks", "narrower") == ["black-backpacks", "red-backpacks"]  # biggest first
    assert links("red-backpacks", "other colours") == ["black-backpacks"]
    assert links("black-watches", "broader") == [] and links("black-watches", "shared products") == []
    # Two attributes up is no relation above: "backpacks" comes in by its shared products
    assert links("black-backpacks-for-men", "shared products") == ["backpacks"]
    assert related.filter(pl.col("slug") == pl.col("related_slug")).is_empty()


def test_thin_pages_are_not_indexed_and_the_report_lists_the_worst() -> None:
    thin = pages({"few": ids[:5]}).vstack(pages({"unsure": ids[:20]}, relevance=0.3)).vstack(pages({"good": ids[20:40]}))
    index = indexing(thin, IndexingConfig(min_indexed_products=12, min_indexed_relevance=0.5))
    by_slug = {r["slug"]: r for r in index.iter_rows(named=True)}
    assert by_slug["good"]["indexed"] and by_slug["good"]["reason"] is None
    assert not by_slug["few"]["indexed"] and by_slug["few"]["reason"] == "5 products < 12"
    assert not by_slug["unsure"]["indexed"] and by_slug["unsure"]["reason"].startswith("top-10 relevance 0.29")
    titles = collections({s: (s.title(), [("product_type", "shirt")], 5) for s in ("few", "unsure", "good")})
    attrs = pl.DataFrame({"slug": ["few", "unsure", "good"], "key": ["product_type"] * 3, "value": ["shirt"] * 3, "n_attributes": [1, 1, 1]})
    catalog = pl.DataFrame({"product_id": ids + ["p99"], "title": ["x"] * 41})  # no labels: P@10 cannot be judged
    merges = pl.DataFrame({"slug": ["dup"], "title": ["Dup"], "merged_into": ["good"], "jaccard": [0.9]})
    report = quality_report(4, merges, thin, index, titles, attrs, catalog)
    meta = report.as_metadata()
    assert meta["quality_pages"] == {"matched": 4, "merged": 1, "published": 3, "indexed": 1, "noindex (thin)": 2}
    assert meta["quality_coverage"]["on_a_page"] == 40 and meta["quality_coverage"]["on_an_indexed_page"] == 20
    assert meta["quality_coverage"]["share_on_a_page"] == round(40 / 41, 4)
    assert meta["quality_p_at_10"] == {"pages_checked": 0}
    assert [p["slug"] for p in meta["quality_worst_pages"]] == ["unsure", "good", "few"]  # lowest top-10 relevance first without labels
    assert meta["quality_worst_pages"][0]["why_noindex"].startswith("top-10 relevance")
