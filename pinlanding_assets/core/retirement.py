"""Shards and products that left the catalog leave the warehouse, so they leave the pages.

A shard that disappears from the catalog is never re-materialized, so nothing would ever
replace its rows: `retire_removed` deletes them from every per-shard table. A product removed
from a shard that was re-ingested is gone from `catalog_products`, but its scores stay when
the shard's scoring was blocked by its gate (the shard keeps its last good scores): those
rows go too. The publish step runs this first, so the next pages, site and sitemap are
built from products that are still in the catalog; the page diff then records their pages
as removed and the retired slugs redirect as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .warehouse import Warehouse, transaction

# Tables with a `shard` column, one set of rows per catalog shard.
PER_SHARD_TABLES = ("catalog_products", "raw_attributes", "quarantine", "product_attribute_scores")


@dataclass(frozen=True)
class Retirement:
    shards: list[str]  # shards no longer in the catalog, whose rows were deleted
    rows_deleted: dict[str, int]  # table -> rows deleted (shards and products)

    def as_metadata(self) -> dict:
        return {"retired_shards": self.shards, "retired_rows": self.rows_deleted}


def retire_removed(warehouse: Warehouse, live_shards: Sequence[str]) -> Retirement:
    """Delete the rows of shards not in `live_shards`, and the scores of products that are no
    longer in `catalog_products`, in one transaction."""
    deleted: dict[str, int] = {}
    with warehouse.connect() as con:
        # Per-shard tables that exist and carry a shard column (tables written by hand, e.g. in
        # tests, may not).
        tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.columns WHERE column_name = 'shard'").fetchall()}
        has_products = bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'catalog_products'").fetchall()[0][0])
        stored = set()
        for table in PER_SHARD_TABLES:
            if table in tables:
                stored |= {row[0] for row in con.execute(f'SELECT DISTINCT shard FROM "{table}"').fetchall()}
        removed = sorted(stored - set(live_shards))
        with transaction(con):
            for table in PER_SHARD_TABLES:
                if table not in tables:
                    continue
                n = 0
                if removed:
                    n += con.execute(f'DELETE FROM "{table}" WHERE shard IN (SELECT UNNEST(?::VARCHAR[]))', [removed]).fetchall()[0][0]
                if table == "product_attribute_scores" and has_products:
                    n += con.execute(
                        'DELETE FROM product_attribute_scores WHERE product_id NOT IN (SELECT product_id FROM catalog_products)'
                    ).fetchall()[0][0]
                if n:
                    deleted[table] = n
    return Retirement(removed, deleted)
