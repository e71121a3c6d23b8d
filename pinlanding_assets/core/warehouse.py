"""The DuckDB warehouse: one embedded database file, polars frames in and out.

DuckDB lets one process at a time open a database file for writing, and a second process
that tries gets a lock error. Several Dagster steps (the multiprocess executor, a backfill
next to `dagster dev`) may touch the warehouse at once, so every access takes an
exclusive file lock beside the database (`core/file_lock.py`) for as long as its
connection is open, and connections are kept short. Writes happen in one transaction each:
a re-materialized partition replaces its rows, never adds to them. A second `connect()` in a
thread that already holds the warehouse fails at once instead of waiting for itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

from .file_lock import LockHeldByThisThread, exclusive_lock


class WarehouseError(RuntimeError):
    pass


class Warehouse:
    def __init__(self, path: Path | str, lock_timeout_s: float = 600.0):
        self.path = Path(path)
        self.lock_path = self.path.with_suffix(self.path.suffix + ".lock")
        self.lock_timeout_s = lock_timeout_s

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        try:
            lock = exclusive_lock(self.lock_path, self.lock_timeout_s)
            lock.__enter__()
        except LockHeldByThisThread:
            raise WarehouseError(
                f"this thread already has a connection to the warehouse {self.path} open; a second "
                "one would wait for its own lock: use the open connection, or close it first"
            ) from None
        try:
            con = duckdb.connect(str(self.path))
            try:
                yield con
            finally:
                con.close()
        finally:
            lock.__exit__(None, None, None)

    # -- reads -------------------------------------------------------------------------

    def has_table(self, table: str) -> bool:
        with self.connect() as con:
            return _has_table(con, table)

    def qualified_name(self, table: str) -> str:
        return qualified_table_name(self.path, table)

    def row_counts(self, tables: Sequence[str], column: str | None = None, value: object = None) -> dict[str, int]:
        """Rows of each table (only those whose `column` equals `value`, when given), in one
        connection; 0 for a table that does not exist; a table without `column` is left out."""
        counts = {}
        with self.connect() as con:
            for table in tables:
                if not _has_table(con, table):
                    counts[table] = 0
                elif column is None:
                    counts[table] = _run(con, f'SELECT count(*) FROM "{table}"')[0][0]
                elif column in [r[0] for r in _run(con, f'DESCRIBE "{table}"')]:
                    counts[table] = _run(con, f'SELECT count(*) FROM "{table}" WHERE "{column}" = ?', [value])[0][0]
        return counts

    def columns(self, table: str) -> list[str]:
        """The table's column names, in order; [] if the table does not exist."""
        return self.read("SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position", [table]).get_column("column_name").to_list()

    def read(self, sql: str, params: Sequence | None = None) -> pl.DataFrame:
        with self.connect() as con:
            return query_polars(con, sql, params)

    def read_table(self, table: str, where: str | None = None, params: Sequence | None = None) -> pl.DataFrame:
        """The table's rows (optionally filtered); an empty frame if the table does not exist."""
        with self.connect() as con:
            if not _has_table(con, table):
                return pl.DataFrame()
            sql = f'SELECT * FROM "{table}"' + (f" WHERE {where}" if where else "")
            return query_polars(con, sql, params)

    # -- writes ------------------------------------------------------------------------

    def replace_table(self, table: str, frame: pl.DataFrame) -> int:
        with self.connect() as con:
            con.register("incoming", frame.to_arrow())
            _run(con, f'CREATE OR REPLACE TABLE "{table}" AS SELECT * FROM incoming')
            con.unregister("incoming")
        return frame.height

    def replace_rows(self, table: str, frame: pl.DataFrame, column: str, values: Sequence[str]) -> int:
        """Delete the rows whose `column` is in `values`, insert `frame`, in one transaction.

        This is how a partition (a shard) is re-materialized: its old rows go, the new ones
        come, and the other partitions are untouched.
        """
        if column not in frame.columns:
            raise WarehouseError(f"frame for {table!r} has no partition column {column!r}")
        delete = f'DELETE FROM "{table}" WHERE "{column}" IN (SELECT UNNEST(?::VARCHAR[]))'
        self._delete_then_insert(table, frame, delete, [list(values)])
        return frame.height

    def upsert(self, table: str, frame: pl.DataFrame, key_columns: Sequence[str]) -> int:
        """Insert rows, replacing any with the same key (caches: embeddings, LLM answers)."""
        if frame.is_empty():
            return 0
        keys = ", ".join(f'"{c}"' for c in key_columns)
        self._delete_then_insert(table, frame, f'DELETE FROM "{table}" WHERE ({keys}) IN (SELECT ({keys}) FROM incoming)')
        return frame.height

    def _delete_then_insert(self, table: str, frame: pl.DataFrame, delete_sql: str, params: Sequence | None = None) -> None:
        """Create the table from the frame's schema if needed, then delete and insert in one
        transaction: a crash leaves either the old rows or the new ones, never both."""
        with self.connect() as con:
            # The view goes when the connection closes: no unregister in a `finally`, which
            # could raise on a broken connection and hide the real error.
            con.register("incoming", frame.to_arrow())
            with transaction(con):
                if not _has_table(con, table):
                    _run(con, f'CREATE TABLE "{table}" AS SELECT * FROM incoming LIMIT 0')
                _check_columns(con, table, frame)
                _run(con, delete_sql, params)
                _run(con, f'INSERT INTO "{table}" BY NAME SELECT * FROM incoming')


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN, then COMMIT if the block succeeds, else ROLLBACK and re-raise the block's (or
    the COMMIT's) own error. When a COMMIT fails (disk full) DuckDB has already ended the
    transaction, so the ROLLBACK raises "no transaction is active": that second error is
    only attached as a note, never raised in place of the one that says what went wrong."""
    _run(con, "BEGIN TRANSACTION")
    try:
        yield
        _run(con, "COMMIT")
    except BaseException as error:
        try:
            _run(con, "ROLLBACK")
        except Exception as rollback_error:
            error.add_note(f"(the ROLLBACK after it failed as well: {rollback_error})")
        raise


def _run(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence | None = None) -> list[tuple]:
    # DuckDB 2 keeps a statement's result open until it is fully fetched.
    return con.execute(sql, list(params) if params else []).fetchall()


def qualified_table_name(database_file: Path | str, table: str) -> str:
    """`<catalog>.main.<table>`: DuckDB names an attached file's catalog after its stem."""
    return f"{Path(database_file).stem}.main.{table}"


def query_polars(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence | None = None) -> pl.DataFrame:
    return pl.from_arrow(con.sql(sql, params=list(params) if params else None).to_arrow_table())  # type: ignore[return-value]


def _has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    rows = _run(con, "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table])
    return bool(rows[0][0])


def _check_columns(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
    """The stored table must have every column of the new rows: a column the new rows add
    (a newer version of the step writes one more) is added to the table, the rows already
    stored holding NULL in it until their partition is written again; a column the new rows
    lack is an error."""
    existing = [r[0] for r in _run(con, f'DESCRIBE "{table}"')]
    lacking = [c for c in existing if c not in frame.columns]
    if lacking:
        raise WarehouseError(
            f"table {table!r} has columns {existing} but the new rows have {frame.columns}; "
            "the schema changed since it was written: drop the table (or use a fresh PINLANDING_HOME)"
        )
    incoming_types = {r[0]: r[1] for r in _run(con, "DESCRIBE incoming")}
    for column in frame.columns:
        if column not in existing:
            _run(con, f'ALTER TABLE "{table}" ADD COLUMN "{column}" {incoming_types[column]}')
