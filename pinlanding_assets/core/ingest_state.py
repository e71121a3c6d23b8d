"""The content fingerprint each shard had when it was last ingested (table `shard_ingests`).

`raw_attributes` records it after a successful ingest; the refresh sensor compares the
catalog's current fingerprints with it, so a shard is refreshed only when its content
changed since it was last ingested, whoever ingested it (`make run` or a sensor run).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import polars as pl

from .warehouse import Warehouse

INGESTS_TABLE = "shard_ingests"
INGESTS_SCHEMA = {"shard": pl.String, "fingerprint": pl.String, "ingested_at": pl.Datetime("us", "UTC")}


def record_ingest(warehouse: Warehouse, shard: str, fingerprint: str | None) -> None:
    row = pl.DataFrame([{"shard": shard, "fingerprint": fingerprint, "ingested_at": datetime.now(timezone.utc)}], schema=INGESTS_SCHEMA)
    warehouse.upsert(INGESTS_TABLE, row, ["shard"])


def ingested_fingerprints(warehouse: Warehouse) -> dict[str, str]:
    table = warehouse.read_table(INGESTS_TABLE)
    return {} if table.is_empty() else dict(table.select("shard", "fingerprint").iter_rows())


@dataclass(frozen=True)
class CatalogChanges:
    """What a refresh must do: shards new to the registered ones, shards that left the
    catalog, and shards to ingest again (new, or whose content differs from both its last
    ingest and the refresh already requested for it)."""

    current: dict[str, str]  # shard -> content fingerprint now
    new: list[str]
    removed: list[str]
    changed: list[str]  # the new ones included

    @property
    def nothing(self) -> bool:
        return not self.new and not self.changed and not self.removed

    def requested_after(self, requested: dict[str, str]) -> dict[str, str]:
        """The refreshes requested once these are: a shard's fingerprint stays until the
        shard changes again or leaves the catalog, so a refresh is never requested twice."""
        still = {s: fp for s, fp in requested.items() if s in self.current and s not in self.changed}
        return {s: self.current[s] for s in self.changed} | still


def catalog_changes(current: dict[str, str], ingested: dict[str, str], requested: dict[str, str], registered: set[str]) -> CatalogChanges:
    """Compare the catalog's fingerprints (`current`) with the last ingest of each shard,
    the refreshes already requested, and the shards registered for refresh."""
    return CatalogChanges(
        current=current,
        new=sorted(s for s in current if s not in registered),
        removed=sorted(s for s in registered if s not in current),
        changed=sorted(s for s, fp in current.items() if fp != ingested.get(s) and fp != requested.get(s)),
    )
