"""Catalog loading and row validation.

Two layouts are read:

* the Kaggle "Fashion Product Images" layout: a directory with `styles.csv` and
  `images/<id>.jpg` (the shared dataset);
* a generic table, `products.csv` or `products.parquet` (or the file itself), with at least
  `id`, `title`, `image` (a path relative to the table's folder) and optional
  `description`, `category`, a shard column and `label_<key>` ground-truth columns.

Both become one frame of `PRODUCT_SCHEMA` plus `label_<key>` columns; any other column of
the merchant's (brand, year, ...) rides along in `metadata` (a JSON object per row). Rows
that cannot be used (no title, duplicate id, missing, escaping or undecodable image) go to a
quarantine frame with the reason; the rest of the catalog goes on.

Labels are answers, not inputs: `TeacherInputs.view` is the one place that decides which
columns the teacher (the VLM or its offline stand-in) may read. By default it reads the
title, the description, the image and the merchant's `category`; `label_<key>` columns
only when a user names them explicitly (an upper-bound experiment, flagged as such).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from PIL import Image

# Kaggle column -> our attribute key (ground truth stored as label_<key>).
KAGGLE_LABEL_COLUMNS = {
    "articleType": "product_type",
    "baseColour": "color",
    "gender": "gender",
    "usage": "occasion",
    "season": "season",
}
KAGGLE_SHARD_COLUMN = "masterCategory"
GENERIC_SHARD_COLUMN = "shard"
SINGLE_SHARD = "all"

PRODUCT_SCHEMA = {
    "product_id": pl.String,
    "shard": pl.String,
    "title": pl.String,
    "description": pl.String,
    "category": pl.String,
    "image_path": pl.String,
    "image_hash": pl.String,
    "text_hash": pl.String,
    "metadata": pl.String,  # JSON object of the catalog's other columns, e.g. {"brand": "Puma"}
}
LABEL_PREFIX = "label_"
# Catalog columns with a fixed meaning (everything else goes to `metadata`).
KNOWN_COLUMNS = {"id", "title", "image", "description", "category", "row_problem"}
QUARANTINE_SCHEMA = {
    "product_id": pl.String,
    "shard": pl.String,
    "stage": pl.String,
    "reason": pl.String,
    "detail": pl.String,
}
MAX_IMAGE_PIXELS = 40_000_000  # larger images are refused: decoding one costs seconds and GBs


class CatalogError(ValueError):
    """The catalog as a whole cannot be read (as opposed to one bad row)."""


@dataclass(frozen=True)
class CatalogTable:
    """Where the catalog's table is and how to read it."""

    table_path: Path
    layout: str  # "kaggle" | "generic"
    shard_column: str

    @property
    def root(self) -> Path:
        return self.table_path.parent


@dataclass(frozen=True)
class LoadedCatalog:
    products: pl.DataFrame  # PRODUCT_SCHEMA + label_<key> columns
    quarantine: pl.DataFrame  # QUARANTINE_SCHEMA

    @property
    def label_keys(self) -> list[str]:
        return [c.removeprefix(LABEL_PREFIX) for c in self.products.columns if c.startswith(LABEL_PREFIX)]


def label_columns(frame: pl.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith(LABEL_PREFIX)]


# What the teacher always reads; `TeacherInputs.columns` adds structured columns to it.
# (`pixel_color` is the colour the teacher read on the image itself, where the text names none.)
TEACHER_CONTENT_COLUMNS = ("product_id", "shard", "title", "description", "image_path", "image_hash", "text_hash", "pixel_color")


@dataclass(frozen=True)
class TeacherInputs:
    """Which catalog columns the teacher may read besides the product's content (title,
    description, image). `category` is the merchant's own category and is read as text;
    any other named column (e.g. `brand`, or a label column such as `label_color` for an
    upper-bound experiment) is trusted as an attribute of that name. Label columns are
    never read unless named here."""

    columns: tuple[str, ...] = ("category",)

    @property
    def reads_labels(self) -> bool:
        return any(c.startswith(LABEL_PREFIX) for c in self.columns)

    def trusted_attributes(self) -> list[tuple[str, str]]:
        """(column, attribute key) for the columns trusted as attributes."""
        return [(c, c.removeprefix(LABEL_PREFIX)) for c in self.columns if c != "category"]

    def describe(self) -> str:
        read = ["title", "description", "image", *self.columns]
        return ", ".join(read) + ("  (reads catalog labels: an upper bound, not a content-first figure)" if self.reads_labels else "")

    def view(self, products: pl.DataFrame) -> pl.DataFrame:
        """The products as the teacher may see them: content plus the named columns (taken
        from the product's own columns or its `metadata`), nothing else."""
        columns = [pl.col(c) for c in TEACHER_CONTENT_COLUMNS if c in products.columns]
        for name in self.columns:
            if name in products.columns:
                columns.append(pl.col(name))
            elif "metadata" in products.columns:
                columns.append(pl.col("metadata").map_elements(lambda m, n=name: _metadata_value(m, n), return_dtype=pl.String).alias(name))
            else:
                raise CatalogError(f"teacher column {name!r} is not in the catalog (it has {products.columns})")
        view = products.select(columns)
        missing = [name for name in self.columns if name not in products.columns and view.get_column(name).null_count() == view.height and view.height]
        if missing:
            raise CatalogError(f"teacher column(s) {missing} are not in the catalog: no product has a value")
        return view


def _metadata_value(metadata: str | None, name: str) -> str | None:
    if not metadata:
        return None
    value = json.loads(metadata).get(name)
    return None if value is None else str(value)


def locate_catalog(location: Path | str, shard_column: str | None = None) -> CatalogTable:
    """Resolve a catalog location (directory or table file) to its table and layout."""
    path = Path(location).expanduser().resolve()
    if not path.exists():
        raise CatalogError(f"catalog not found: {path} (set PINLANDING_CATALOG or the catalog resource)")
    if path.is_dir():
        for name, layout in (("styles.csv", "kaggle"), ("products.parquet", "generic"), ("products.csv", "generic")):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise CatalogError(
                f"{path} holds neither styles.csv (Kaggle layout) nor products.csv / products.parquet"
            )
    else:
        layout = "kaggle" if path.name == "styles.csv" else "generic"
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise CatalogError(f"catalog table must be .csv or .parquet, got {path.name}")
    default_shard = KAGGLE_SHARD_COLUMN if layout == "kaggle" else GENERIC_SHARD_COLUMN
    return CatalogTable(path, layout, shard_column or default_shard)


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "unnamed"


def read_catalog_table(table: CatalogTable) -> pl.DataFrame:
    """The raw table with our column names, every value a string; no validation yet."""
    raw = _read_raw(table.table_path)
    if table.layout == "kaggle":
        renamed = {"id": "id", "productDisplayName": "title", "subCategory": "category"}
        renamed.update({col: f"label_{key}" for col, key in KAGGLE_LABEL_COLUMNS.items()})
        raw = raw.rename({k: v for k, v in renamed.items() if k in raw.columns})
        if "image" not in raw.columns:
            raw = raw.with_columns((pl.lit("images/") + pl.col("id") + pl.lit(".jpg")).alias("image"))
    missing = [c for c in ("id", "title", "image") if c not in raw.columns]
    if missing:
        raise CatalogError(f"{table.table_path} lacks required column(s) {missing}; it has {raw.columns}")
    if table.shard_column in raw.columns:
        shard = pl.col(table.shard_column).fill_null("").map_elements(slugify, return_dtype=pl.String)
    else:
        shard = pl.lit(SINGLE_SHARD)
    labels = label_columns(raw)
    extras = [c for c in raw.columns if c not in KNOWN_COLUMNS and c not in labels]
    metadata = (
        pl.struct(extras).map_elements(lambda row: json.dumps({k: v for k, v in row.items() if v is not None}, sort_keys=True), return_dtype=pl.String)
        if extras
        else pl.lit(None, pl.String)
    )
    return raw.select(
        pl.col("id").str.strip_chars().alias("product_id"),
        shard.alias("shard"),
        pl.col("title").str.strip_chars().alias("title"),
        (pl.col("description") if "description" in raw.columns else pl.lit(None, pl.String)).alias("description"),
        (pl.col("category") if "category" in raw.columns else pl.lit(None, pl.String)).alias("category"),
        pl.col("image").alias("image"),
        metadata.alias("metadata"),
        pl.col("row_problem"),
        *[pl.col(c).str.strip_chars().str.to_lowercase() for c in labels],
    )


def _read_raw(path: Path) -> pl.DataFrame:
    try:
        if path.suffix.lower() == ".parquet":
            frame = pl.read_parquet(path)
            return frame.with_columns(pl.all().cast(pl.String), pl.lit(None, pl.String).alias("row_problem"))
        return _read_csv_rows(path)
    except (OSError, pl.exceptions.PolarsError, csv.Error) as exc:
        raise CatalogError(f"cannot read catalog table {path}: {exc}") from exc


def _read_csv_rows(path: Path) -> pl.DataFrame:
    """Every value a string (ids like "0012" stay as written). Undecodable bytes become U+FFFD
    instead of failing the file; a row whose field count differs from the header's (an
    unquoted comma, a cut line) is kept with a `row_problem` so it reaches quarantine with
    that reason instead of being silently shifted or dropped; blank lines are skipped."""
    csv.field_size_limit(10_000_000)
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle)
        header = [h.strip().lstrip("\ufeff") for h in next(reader, [])]
        if not header:
            raise CatalogError(f"{path} is empty")
        rows, problems = [], []
        for line_no, fields in enumerate(reader, start=2):
            if not fields or all(not f.strip() for f in fields):
                continue
            problem = None
            if len(fields) != len(header):
                problem = f"malformed row at line {line_no}: {len(fields)} fields, header has {len(header)}"
                fields = (fields + [""] * len(header))[: len(header)]
            rows.append([f if f != "" else None for f in fields])
            problems.append(problem)
    columns = {name: [r[i] for r in rows] for i, name in enumerate(header)}
    frame = pl.DataFrame(columns, schema={name: pl.String for name in header})
    return frame.with_columns(pl.Series("row_problem", problems, dtype=pl.String))


def list_shards(table: CatalogTable) -> list[str]:
    frame = read_catalog_table(table)
    return sorted(frame.get_column("shard").unique().to_list())


def load_catalog(table: CatalogTable, shards: list[str] | None = None) -> LoadedCatalog:
    """Read and validate the catalog (optionally only some shards)."""
    frame = read_catalog_table(table)
    if shards is not None:
        frame = frame.filter(pl.col("shard").is_in(shards))
    return validate_rows(frame, table.root)


def validate_rows(frame: pl.DataFrame, root: Path) -> LoadedCatalog:
    root = root.resolve()
    label_cols = label_columns(frame)
    good: list[dict] = []
    bad: list[dict] = []
    seen: set[str] = set()
    for row in frame.iter_rows(named=True):
        pid = row["product_id"] or ""
        reason, detail, image_path, image_hash = _check_row(row, root, seen)
        if reason:
            bad.append({"product_id": pid, "shard": row["shard"], "stage": "catalog", "reason": reason, "detail": detail})
            continue
        seen.add(pid)
        text = f"{row['title']}\n{row['description'] or ''}"
        good.append(
            {
                "product_id": pid,
                "shard": row["shard"],
                "title": row["title"],
                "description": row["description"],
                "category": row["category"],
                "image_path": str(image_path),
                "image_hash": image_hash,
                "text_hash": hashlib.sha1(text.encode("utf-8", "replace")).hexdigest(),
                "metadata": row.get("metadata"),
                **{c: row[c] or None for c in label_cols},
            }
        )
    schema = dict(PRODUCT_SCHEMA) | {c: pl.String for c in label_cols}
    return LoadedCatalog(
        products=pl.DataFrame(good, schema=schema),
        quarantine=pl.DataFrame(bad, schema=QUARANTINE_SCHEMA),
    )


def _check_row(row: dict, root: Path, seen: set[str]) -> tuple[str | None, str, Path | None, str]:
    pid = row["product_id"]
    if row.get("row_problem"):
        return "malformed row", row["row_problem"], None, ""
    if not pid:
        return "missing id", "", None, ""
    if pid in seen:
        return "duplicate id", f"id {pid} appeared earlier in the catalog", None, ""
    if not row["title"]:
        return "empty title", "", None, ""
    if not row["image"]:
        return "missing image", "no image path", None, ""
    image_path = (root / row["image"]).resolve()
    if not image_path.is_relative_to(root):
        return "image path escapes catalog", row["image"], None, ""
    if not image_path.is_file():
        return "missing image", f"{row['image']} does not exist", None, ""
    data = image_path.read_bytes()
    problem = image_problem(image_path)
    if problem:
        return problem[0], problem[1], None, ""
    return None, "", image_path, image_digest(data)


def image_digest(data: bytes) -> str:
    """The `image_hash` of an image's bytes: what ingest validated, and what publishing
    checks a file against before copying it into the site."""
    return hashlib.sha1(data).hexdigest()


def image_problem(path: Path) -> tuple[str, str] | None:
    """(reason, detail) when this file is not a usable image, None when it is."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we apply our own limit
            with Image.open(path) as img:
                width, height = img.size
                if width * height > MAX_IMAGE_PIXELS:
                    return "image too large", f"{width}x{height} pixels, limit {MAX_IMAGE_PIXELS}"
                img.load()
    except Image.DecompressionBombError as exc:
        return "image too large", str(exc)[:300]
    except Exception as exc:
        return "undecodable image", f"{type(exc).__name__}: {exc}"[:300]
    return None


def shard_fingerprints(table: CatalogTable) -> dict[str, str]:
    """A content fingerprint per shard: its rows as read plus each image file's size and
    modification time (a stat, not a read: cheap enough to run on every sensor tick).
    Any edited row, added or removed product, or replaced image changes it."""
    frame = read_catalog_table(table).sort("shard", "product_id")
    root = table.root
    digests: dict[str, hashlib._Hash] = {}
    shard_at, image_at = frame.columns.index("shard"), frame.columns.index("image")
    for row in frame.iter_rows():
        shard, image = row[shard_at], row[image_at]
        digest = digests.setdefault(shard, hashlib.sha1())
        digest.update(repr(row).encode("utf-8", "replace"))
        try:
            stat = (root / image).stat() if image else None
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode() if stat else b"-")
        except OSError:
            digest.update(b"missing")
    return {shard: d.hexdigest()[:16] for shard, d in digests.items()}
