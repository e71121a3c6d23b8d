"""The content fingerprint each shard had when it was last ingested (table `shard_ingests`).

`raw_attributes` records it after a successful ingest; the refresh sensor compares the
catalog's current fingerprints with it, so a shard is refreshed only when its content
changed since it was last ingested, whoever ingested it (`make run` or a sensor run).
"""

from __future__ import annotations

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
