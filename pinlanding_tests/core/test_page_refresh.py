"""Refresh semantics: added / removed / changed pages and retired slugs with redirects."""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl

from pinlanding_assets.core.page_refresh import RETIRED_SCHEMA, diff_pages, published_pages, redirect_target, update_retired

T1 = datetime(2026, 1, 1, tzinfo=timezone.utc)
T2 = datetime(2026, 1, 2, tzinfo=timezone.utc)
T3 = datetime(2026, 1, 3, tzinfo=timezone.utc)

ATTRS = {
    "navy-shirts-men": [("product_type", "shirt"), ("color", "navy blue"), ("gender", "men")],
    "navy-casual-shirts-men": [("product_type", "shirt"), ("color", "navy blue"), ("gender", "men"), ("occasion", "casual")],
    "black-watches": [("product_type", "watch"), ("color", "black")],
    "black-watches-men": [("product_type", "watch"), ("color", "black"), ("gender", "men")],
    "red-bags": [("product_type", "handbag"), ("color", "red")],
}


def collections(titles: dict[str, str]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"slug": s, "title": t, "attributes": [{"key": k, "value": v} for k, v in ATTRS[s]]} for s, t in titles.items()],
        schema={"slug": pl.String, "title": pl.String, "attributes": pl.List(pl.Struct({"key": pl.String, "value": pl.String}))},
    )


def pages(members: dict[str, list[str]]) -> pl.DataFrame:
    rows = [(slug, pid, 1.0 - 0.01 * i, i + 1) for slug, pids in members.items() for i, pid in enumerate(pids)]
    return pl.DataFrame(rows, schema={"slug": pl.String, "product_id": pl.String, "relevance": pl.Float64, "rank": pl.Int64}, orient="row")


TITLES = {s: s.replace("-", " ").title() for s in ATTRS}


def snapshot(members: dict[str, list[str]], titles: dict[str, str] | None = None) -> pl.DataFrame:
    return published_pages(collections(titles or TITLES), pages(members))


def test_first_refresh_adds_every_page() -> None:
    now = snapshot({"navy-shirts-men": ["a", "b"], "black-watches": ["w1", "w2"]})
    summary = diff_pages(published_pages(collections({}), pages({})), now, "r1", T1)
    assert summary.as_metadata() == {"pages_added": 2, "pages_removed": 0, "pages_changed": 0, "pages_unchanged": 0}
    assert summary.changes.get_column("products_added").to_list() == [2, 2]


def test_added_removed_changed_and_unchanged() -> None:
    before = snapshot({"navy-shirts-men": ["a", "b", "c"], "navy-casual-shirts-men": ["a", "b"], "black-watches": ["w1", "w2"], "red-bags": ["r1", "r2"]})
    titles = TITLES | {"red-bags": "Red Handbags"}
    after = snapshot({"navy-shirts-men": ["a", "b", "d"], "black-watches": ["w2", "w1"], "black-watches-men": ["w1"], "red-bags": ["r1", "r2"]}, titles)
    summary = diff_pages(before, after, "r2", T2)
    changes = {r["slug"]: r for r in summary.changes.iter_rows(named=True)}
    assert summary.as_metadata() == {"pages_added": 1, "pages_removed": 1, "pages_changed": 3, "pages_unchanged": 0}
    assert changes["black-watches-men"]["change"] == "added"
    assert changes["navy-casual-shirts-men"]["change"] == "removed"
    assert (changes["navy-shirts-men"]["products_added"], changes["navy-shirts-men"]["products_removed"]) == (1, 1)
    assert changes["black-watches"]["reordered"] is True
    assert (changes["red-bags"]["title_before"], changes["red-bags"]["title_after"]) == ("Red Bags", "Red Handbags")
    same = diff_pages(after, after, "r3", T3)
    assert same.changes.is_empty() and same.unchanged == 4


def test_retired_slugs_redirect_to_the_closest_live_page_and_come_back() -> None:
    first = snapshot({"navy-shirts-men": ["a"], "navy-casual-shirts-men": ["a"], "black-watches-men": ["w"], "red-bags": ["r"]})
    second = snapshot({"navy-shirts-men": ["a"], "black-watches": ["w"]})
    summary = diff_pages(first, second, "r2", T2)
    retired = update_retired(pl.DataFrame(), summary, first, second, "r2", T2)
    assert retired.schema == pl.Schema(RETIRED_SCHEMA)
    redirects = dict(retired.select("slug", "redirect_to").iter_rows())
    assert redirects == {"navy-casual-shirts-men": "navy-shirts-men", "black-watches-men": "black-watches", "red-bags": None}
    assert set(retired.get_column("retired_by").to_list()) == {"r2"}

    # red-bags comes back: live again, no longer retired; navy-shirts-men retires and the
    # casual page that pointed at it is re-pointed (nothing left for it: the index)
    third = snapshot({"black-watches": ["w"], "red-bags": ["r"]})
    summary3 = diff_pages(second, third, "r3", T3)
    retired3 = update_retired(retired, summary3, second, third, "r3", T3)
    redirects3 = dict(retired3.select("slug", "redirect_to").iter_rows())
    assert redirects3 == {"navy-casual-shirts-men": None, "black-watches-men": "black-watches", "navy-shirts-men": None}
    retired_at = dict(retired3.select("slug", "retired_at").iter_rows())
    assert retired_at["black-watches-men"] == T2 and retired_at["navy-shirts-men"] == T3  # first retirement kept


def test_redirect_prefers_a_more_general_page_over_a_sibling() -> None:
    live = snapshot({"navy-shirts-men": ["a"], "navy-casual-shirts-men": ["a", "b", "c"]})
    target = redirect_target(frozenset(ATTRS["navy-casual-shirts-men"]) | {("season", "summer")}, live)
    assert target == "navy-casual-shirts-men"  # the largest subset wins, not the bigger page
    assert redirect_target(frozenset(ATTRS["black-watches"]), live) is None
