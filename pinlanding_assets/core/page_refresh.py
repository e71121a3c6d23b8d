"""Refresh semantics: what a new materialization of the pages changed, and retired slugs.

Published pages are public URLs, so every refresh is compared with the previous one:

* **added**: a slug that has a page now and had none before;
* **removed**: a slug that had a page and has none now (its collection was not kept, or too
  few products still match). Its URL must not 404: it goes to the retired-slug table with a
  redirect target, and the site writes a redirect page for it;
* **changed**: a slug on both sides whose title, member products or order differ
  (`products_added`, `products_removed` and `reordered` say how).

Redirect target (ours): the page a retired slug was merged into as a near-duplicate
(`page_dedup`), when it is live; else the live page with the same attribute set under a new
slug (a slug renamed, e.g. from the hash-suffixed slugs of before); else the live page whose
attribute set is the largest proper subset of the retired one's ("Navy Blue Casual Shirts for Men" -> "Navy Blue Shirts for Men"), ties to
the bigger page; else the live page sharing the most attributes with it including the
product type; else none (the site sends it to the index). A retired slug that comes back is
live again and leaves the table; a retired slug whose target retired too is re-pointed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from .collection_mining import ANCHOR_KEY

PUBLISHED_SCHEMA = {
    "slug": pl.String,
    "title": pl.String,
    "attributes": pl.List(pl.Struct({"key": pl.String, "value": pl.String})),
    "n_products": pl.Int64,
    "products": pl.List(pl.String),  # in rank order
}
CHANGE_SCHEMA = {
    "refresh_id": pl.String,
    "refreshed_at": pl.Datetime("us", "UTC"),
    "slug": pl.String,
    "change": pl.String,  # added | removed | changed
    "title_before": pl.String,
    "title_after": pl.String,
    "products_added": pl.Int64,
    "products_removed": pl.Int64,
    "reordered": pl.Boolean,
}
RETIRED_SCHEMA = {
    "slug": pl.String,
    "title": pl.String,
    "attributes": pl.List(pl.Struct({"key": pl.String, "value": pl.String})),
    "retired_at": pl.Datetime("us", "UTC"),
    "retired_by": pl.String,  # refresh id
    "redirect_to": pl.String,  # a live slug, or null: the index
}


def published_pages(collections: pl.DataFrame, pages: pl.DataFrame) -> pl.DataFrame:
    """One row per page actually published: slug, title, attributes, products in rank order."""
    if pages.is_empty():
        return pl.DataFrame(schema=PUBLISHED_SCHEMA)
    members = pages.sort("slug", "rank").group_by("slug", maintain_order=True).agg(pl.col("product_id").alias("products"))
    return (
        members.join(collections.select("slug", "title", "attributes"), on="slug", how="left")
        .with_columns(pl.col("products").list.len().cast(pl.Int64).alias("n_products"))
        .select(list(PUBLISHED_SCHEMA))
        .cast(PUBLISHED_SCHEMA)  # type: ignore[arg-type]
        .sort("slug")
    )


@dataclass(frozen=True)
class RefreshSummary:
    changes: pl.DataFrame  # CHANGE_SCHEMA
    added: int
    removed: int
    changed: int
    unchanged: int

    def as_metadata(self) -> dict[str, int]:
        return {"pages_added": self.added, "pages_removed": self.removed, "pages_changed": self.changed, "pages_unchanged": self.unchanged}


def diff_pages(previous: pl.DataFrame, current: pl.DataFrame, refresh_id: str, at: datetime) -> RefreshSummary:
    """Compare two `published_pages` frames."""
    before = {r["slug"]: r for r in previous.iter_rows(named=True)}
    after = {r["slug"]: r for r in current.iter_rows(named=True)}
    rows = []
    unchanged = 0
    for slug in sorted(before.keys() | after.keys()):
        old, new = before.get(slug), after.get(slug)
        if old is None:
            rows.append(_change(refresh_id, at, slug, "added", None, new["title"], len(new["products"]), 0, False))
        elif new is None:
            rows.append(_change(refresh_id, at, slug, "removed", old["title"], None, 0, len(old["products"]), False))
        else:
            old_set, new_set = set(old["products"]), set(new["products"])
            reordered = old_set == new_set and list(old["products"]) != list(new["products"])
            if old["title"] == new["title"] and old_set == new_set and not reordered:
                unchanged += 1
                continue
            rows.append(_change(refresh_id, at, slug, "changed", old["title"], new["title"], len(new_set - old_set), len(old_set - new_set), reordered))
    changes = pl.DataFrame(rows, schema=CHANGE_SCHEMA)
    counts = dict(changes.group_by("change").len().iter_rows()) if rows else {}
    return RefreshSummary(changes, counts.get("added", 0), counts.get("removed", 0), counts.get("changed", 0), unchanged)


def _change(refresh_id, at, slug, change, title_before, title_after, added, removed, reordered) -> dict:
    return {
        "refresh_id": refresh_id,
        "refreshed_at": at,
        "slug": slug,
        "change": change,
        "title_before": title_before,
        "title_after": title_after,
        "products_added": added,
        "products_removed": removed,
        "reordered": reordered,
    }


def _attribute_set(attributes: list[dict] | None) -> frozenset[tuple[str, str]]:
    return frozenset((a["key"], a["value"]) for a in attributes or [])


def redirect_target(attributes: frozenset[tuple[str, str]], live: pl.DataFrame) -> str | None:
    """The live slug a retired page with `attributes` should redirect to (see module doc)."""
    best: tuple | None = None
    anchor = {kv for kv in attributes if kv[0] == ANCHOR_KEY}
    for row in live.iter_rows(named=True):
        candidate = _attribute_set(row["attributes"])
        if not candidate:
            continue
        if candidate == attributes:
            rank = (3, len(candidate), row["n_products"], row["slug"])
        elif candidate < attributes:
            rank = (2, len(candidate), row["n_products"], row["slug"])
        elif anchor and anchor <= candidate:
            rank = (1, len(candidate & attributes), row["n_products"], row["slug"])
        else:
            continue
        if best is None or rank[:3] > best[:3] or (rank[:3] == best[:3] and rank[3] < best[3]):
            best = rank
    return best[3] if best else None


def update_retired(
    retired: pl.DataFrame, summary: RefreshSummary, previous: pl.DataFrame, current: pl.DataFrame, refresh_id: str, at: datetime, merged_into: dict[str, str] | None = None
) -> pl.DataFrame:
    """The retired-slug table after this refresh; `merged_into`: slug -> the page it was
    merged into by this publish (`page_dedup`)."""
    merged_into = merged_into or {}
    retired = retired if not retired.is_empty() else pl.DataFrame(schema=RETIRED_SCHEMA)
    live_slugs = set(current.get_column("slug").to_list())
    removed = summary.changes.filter(pl.col("change") == "removed").get_column("slug").to_list()
    newly = previous.filter(pl.col("slug").is_in(removed)).select(
        "slug", "title", "attributes", pl.lit(at).cast(pl.Datetime("us", "UTC")).alias("retired_at"), pl.lit(refresh_id).alias("retired_by")
    )
    kept_old = retired.filter(~pl.col("slug").is_in(live_slugs) & ~pl.col("slug").is_in(removed)).drop("redirect_to")
    table = pl.concat([kept_old.select(newly.columns).cast(newly.schema), newly])  # type: ignore[arg-type]
    targets = [
        merged_into[slug] if merged_into.get(slug) in live_slugs else redirect_target(_attribute_set(a), current)
        for slug, a in table.select("slug", "attributes").iter_rows()
    ]
    return table.with_columns(pl.Series("redirect_to", targets, dtype=pl.String)).select(list(RETIRED_SCHEMA)).cast(RETIRED_SCHEMA).sort("slug")  # type: ignore[arg-type]
