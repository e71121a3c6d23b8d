"""Publishing without Dagster (embedded DuckDB, no Java): the pages, their tables, the export
and the site, the refresh diff across two publishes, the checks, and the publish lock."""

from __future__ import annotations

import threading
from pathlib import Path

import polars as pl
import pytest

from pinlanding_assets.core.catalog import load_catalog, locate_catalog
from pinlanding_assets.core.checks import PageCheckConfig
from pinlanding_assets.core.collection_mining import MiningConfig, mine_combinations, write_collections
from pinlanding_assets.core.evaluation import catalog_label_attributes
from pinlanding_assets.core.file_lock import LockTimeout, exclusive_lock
from pinlanding_assets.core.matching import MatchingConfig
from pinlanding_assets.core.page_dedup import DedupConfig
from pinlanding_assets.core.publishing import PageSettings, PublishConfig, publish
from pinlanding_assets.core.settings import DataHome
from pinlanding_assets.core.warehouse import Warehouse

DUCKDB = PublishConfig(engine="duckdb")


def store_scores(warehouse: Warehouse, products: pl.DataFrame, leave_out: set[str] = frozenset()) -> None:
    """Assigned scores made from the catalog's own labels (so the pages are right by construction)."""
    labels = catalog_label_attributes(products).filter(~pl.col("product_id").is_in(list(leave_out)))
    scores = labels.with_columns(pl.lit(0.0, pl.Float32).alias("score"), pl.lit(0.9, pl.Float32).alias("probability"), pl.lit(True).alias("assigned"))
    warehouse.replace_table("product_attribute_scores", scores)
    warehouse.replace_table("collection_queries", write_collections(mine_combinations(scores.select("product_id", "key", "value"), MiningConfig()), MiningConfig()))


@pytest.fixture
def home(sample_catalog: Path, tmp_path: Path):
    paths = DataHome(tmp_path / "home").ensure()
    warehouse = Warehouse(paths.warehouse)
    products = load_catalog(locate_catalog(sample_catalog)).products
    warehouse.replace_table("catalog_products", products)
    store_scores(warehouse, products)
    return warehouse, paths, products, locate_catalog(sample_catalog).root


def run(home, run_id: str, config: PublishConfig = DUCKDB):
    warehouse, paths, _, catalog_root = home
    return publish(warehouse, paths, catalog_root, run_id, PageSettings(publish=config))


def test_a_publish_stores_exports_and_switches_the_site_and_the_next_one_says_what_changed(home) -> None:
    warehouse, paths, products, _ = home
    first = run(home, "run-1")
    assert first.n_pages >= 10 and first.matched_pages == first.n_pages and first.images.refused.is_empty()
    assert warehouse.read_table("landing_pages").height == first.pages.height
    assert warehouse.read_table("published_pages").height == first.n_pages
    assert first.refresh.added == first.n_pages and first.retired.is_empty()
    assert first.export == paths.exports / "landing_pages.parquet" and pl.read_parquet(first.export).height == first.pages.height
    assert paths.site.is_symlink() and first.site.index == paths.site / "index.html" and first.site.pages == first.n_pages
    assert first.precision_at_10 == 1.0  # pages built from the labels themselves
    smallest, largest = first.smallest_and_largest()
    assert MatchingConfig.min_page_size <= smallest <= largest <= MatchingConfig.max_page_size
    checks = first.checks(MatchingConfig(), PageCheckConfig())
    assert [c.name for c in checks] == ["page_size_bounds", "page_count", "page_precision_at_10"] and all(c.passed for c in checks)

    # The dresses lose their scores: every dress page is removed, retired, and redirects.
    labels = catalog_label_attributes(products)
    dresses = set(labels.filter((pl.col("key") == "product_type") & (pl.col("value") == "dress")).get_column("product_id"))
    dress_slugs = {s for s in first.pages.get_column("slug").unique() if "dress" in s}
    assert dresses and dress_slugs
    store_scores(warehouse, products, dresses)
    second = run(home, "run-2")
    assert second.refresh.removed == len(dress_slugs) and set(second.retired.get_column("slug")) == dress_slugs
    assert set(warehouse.read_table("retired_slugs").get_column("slug")) == dress_slugs
    assert set(warehouse.read_table("page_refresh_log").get_column("refresh_id")) == {"run-1", "run-2"}
    for slug in dress_slugs:
        assert 'http-equiv="refresh"' in (paths.site / "pages" / f"{slug}.html").read_text()


def test_a_publish_waits_for_the_one_holding_the_lock_and_an_unknown_engine_is_refused(home) -> None:
    _, paths, _, _ = home
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with exclusive_lock(paths.publish_lock, 5.0):
            held.set()
            release.wait(5.0)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5.0)
    try:
        with pytest.raises(LockTimeout):
            run(home, "run-waits", PublishConfig(engine="duckdb", publish_lock_timeout_s=0.2))
    finally:
        release.set()
        holder.join()
    assert not paths.site.exists()  # nothing was published while another publish held the lock

    with pytest.raises(ValueError, match="engine must be one of spark, duckdb, got 'polars'"):
        run(home, "run-polars", PublishConfig(engine="polars"))


def test_near_duplicates_merge_and_old_slugs_redirect_to_their_pages(home) -> None:
    warehouse, paths, products, catalog_root = home
    first = run(home, "run-1")
    # A home published before slugs were human: its hash-suffixed slug for a live attribute set.
    live = first.pages.get_column("slug").unique().sort()[0]
    old = warehouse.read_table("published_pages").filter(pl.col("slug") == live).with_columns(pl.lit(f"{live}-86868f").alias("slug"))
    warehouse.replace_table("published_pages", pl.concat([warehouse.read_table("published_pages"), old]))
    loose = DedupConfig(max_jaccard=0.5)  # merges some sample pages (the default 0.8 may merge none)
    second = publish(warehouse, paths, catalog_root, "run-2", PageSettings(publish=DUCKDB, dedup=loose))
    retired = dict(second.retired.select("slug", "redirect_to").iter_rows())
    assert retired[f"{live}-86868f"] == live  # the old URL goes to the page with the same attributes
    merged = second.dedup.merged_into
    assert merged and not set(merged) & set(second.pages.get_column("slug"))
    for slug, target in merged.items():
        assert target in set(second.pages.get_column("slug"))
        page = (paths.site / "pages" / f"{slug}.html").read_text()
        assert 'http-equiv="refresh"' in page and f"url={target}.html" in page
        if slug in retired:  # published by run-1: retired, pointing at the page it merged into
            assert retired[slug] == target
    sitemap = (paths.site / "sitemap.xml").read_text()
    assert not any(f"/pages/{slug}.html" in sitemap for slug in merged)
    # The quality report says what happened to every matched page.
    meta = second.report.as_metadata()
    counts = meta["quality_pages"]
    assert counts["merged"] == len(merged) and counts["published"] == second.n_pages
    assert counts["matched"] == counts["merged"] + counts["published"] + (second.matched_pages - second.n_pages)
    assert counts["indexed"] + counts["noindex (thin)"] == second.n_pages and counts["indexed"] == sitemap.count("<loc>")
    assert meta["quality_p_at_10"]["pages_checked"] > 0 and meta["quality_p_at_10"]["mean"] == 1.0  # built from the labels
    assert 0 < meta["quality_coverage"]["share_on_a_page"] <= 1
    assert meta["quality_worst_pages"] and {"slug", "title", "p_at_10", "products", "indexed"} <= set(meta["quality_worst_pages"][0])
