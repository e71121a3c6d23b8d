"""Catalog loading and row validation.

Two layouts are read:

* the Kaggle "Fashion Product Images" layout: a directory with `styles.csv` and
  `images/<id>.jpg` (the shared dataset);
* a generic table, `products.csv` or `products.parquet` (or the file itself), with at least
  `id`, `title`, `image` (a path relative to the table's folder) and optional
  `description`, `category`, a shard column and `label_<key>` ground-truth columns.

Both become one frame of `PRODUCT_SCHEMA` plus `label_<key>` columns; any other column of
the merchant's (brand, year, ...) rides along in `metadata` (a JSON object per row). One bad
row costs one row: a row that cannot be used (no title, duplicate id, an image path that is
missing, escapes the catalog, holds a NUL byte or loops; an image that is a directory or a
FIFO, too big, of a format we do not accept, or undecodable) goes to a quarantine frame with
the reason; the rest of the catalog goes on. What a row may cost is `IngestLimits`: image
bytes (checked with a stat before a byte is read) and pixels, the formats Pillow may try,
and the length of each text field (longer text is cut, and the cut noted in `cut_fields`).

Labels are answers, not inputs: `TeacherInputs.view` is the one place that decides which
columns the teacher (the VLM or its offline stand-in) may read. By default it reads the
title, the description, the image and the merchant's `category`; `label_<key>` columns
only when a user names them explicitly (an upper-bound experiment, flagged as such).
"""

from __future__ import annotations

import csv
import dataclasses
import errno
import functools
import hashlib
import json
import os
import re
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Collection
from typing import BinaryIO

import polars as pl
from PIL import Image, UnidentifiedImageError

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
    "cut_fields": pl.String,  # JSON {field: original length} of the text fields cut to their limit; null: none cut
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
DETAIL_CHARS = 300  # a quarantine detail is a hint for a person, not a copy of the input
HASH_CHUNK_BYTES = 1 << 20  # images are hashed in chunks: memory stays flat whatever the file


class CatalogError(ValueError):
    """The catalog as a whole cannot be read (as opposed to one bad row)."""


@dataclass(frozen=True)
class IngestLimits:
    """What one catalog row may cost. An image beyond a limit quarantines its row (with the
    limit in the detail); a longer text is cut to its limit (`cut_text`) and the cut noted in
    the product's `cut_fields`, so every later stage (prompts, titles, the site) reads the
    cut text. `load_catalog` takes these; the catalog resource exposes each field with
    these defaults."""

    max_image_bytes: int = 20_000_000  # checked with a stat before a byte is read
    max_image_pixels: int = 40_000_000  # decoding a larger image costs seconds and GBs
    # The only formats Pillow may try: every other parser never sees the bytes (EPS, for
    # one, hands the file to Ghostscript). Names as Pillow spells them (`python -m PIL`).
    image_formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF")
    max_title_chars: int = 300
    max_description_chars: int = 5_000
    max_field_chars: int = 200  # every other text field: category, label columns, each metadata value

    def __post_init__(self) -> None:
        sizes = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "image_formats"}
        too_small = {name: value for name, value in sizes.items() if not isinstance(value, int) or value < 1}
        if too_small:
            raise ValueError(f"ingest limits must be positive whole numbers, got {too_small}")
        Image.init()  # registers every plugin, so Image.OPEN names every format Pillow can read
        formats = tuple(str(name).upper() for name in self.image_formats)
        unknown = [name for name in formats if name not in Image.OPEN]
        if not formats or unknown:
            raise ValueError(f"image_formats must name formats Pillow reads; unknown {unknown or 'none given'}, known {sorted(Image.OPEN)}")
        object.__setattr__(self, "image_formats", formats)  # frozen: normalized once, here


def open_image(path: str | Path) -> Image.Image:
    """A validated catalog image, opened trying the default accepted formats first: told
    nothing, Pillow tries every registered format in turn, some of them (IPTC) without a
    cheap signature test, which was a fifth of decoding a 60x80 JPEG. A format the
    merchant added to `image_formats` still opens (Pillow's full list, second)."""
    try:
        return Image.open(path, formats=IngestLimits.image_formats)
    except UnidentifiedImageError:
        return Image.open(path)


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

    @property
    def cut_products(self) -> int:
        """How many products had some text field cut to its limit."""
        return int(self.products.get_column("cut_fields").is_not_null().sum())

    @property
    def cut_counts(self) -> dict[str, int]:
        """How many products had each text field cut to its limit, e.g. {"description": 3}."""
        counts: dict[str, int] = {}
        for cut in self.products.get_column("cut_fields").drop_nulls():
            for name in json.loads(cut):
                counts[name] = counts.get(name, 0) + 1
        return dict(sorted(counts.items()))


def label_columns(frame: pl.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith(LABEL_PREFIX)]


# What the teacher always reads; `TeacherInputs.columns` adds structured columns to it.
# (`pixel_color` is the colour the teacher read on the image itself, where the text names none.)
TEACHER_CONTENT_COLUMNS = ("product_id", "shard", "title", "description", "image_path", "image_hash", "text_hash", "pixel_color", "pixel_weight")


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
    """The raw table with our column names, every value a string; no validation yet.

    Parsed once per content of the file in a process (a digest of its bytes says which:
    hashing 8 MB takes milliseconds, a modification time can stay the same across quick
    edits): `make run` and the refresh sensor read it for every shard, and the row-by-row
    CSV reading costs about a second on 44k products."""
    try:
        digest = hashlib.sha1(table.table_path.read_bytes()).hexdigest()
    except OSError as exc:
        raise CatalogError(f"cannot read catalog table {table.table_path}: {exc}") from exc
    return _read_catalog_version(table, digest)


@functools.lru_cache(maxsize=2)
def _read_catalog_version(table: CatalogTable, digest: str) -> pl.DataFrame:
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


def load_catalog(table: CatalogTable, shards: list[str] | None = None, limits: IngestLimits = IngestLimits()) -> LoadedCatalog:
    """Read and validate the catalog (optionally only some shards)."""
    frame = read_catalog_table(table)
    if shards is not None:
        frame = frame.filter(pl.col("shard").is_in(shards))
    return validate_rows(frame, table.root, limits)


class RowProblem(Exception):
    """Why one catalog row cannot be used; it becomes the row's quarantine entry."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail[:DETAIL_CHARS]


def validate_rows(frame: pl.DataFrame, root: Path, limits: IngestLimits = IngestLimits()) -> LoadedCatalog:
    """The usable rows as products (text cut to `limits`), the others as quarantine rows
    with their reason: whatever one row's file or text throws, the other rows load."""
    root = root.resolve()
    label_cols = label_columns(frame)
    good: list[dict] = []
    bad: list[dict] = []
    seen: set[str] = set()
    for row in frame.iter_rows(named=True):
        pid = row["product_id"] or ""
        try:
            image_path, image_hash = _check_row(row, root, seen, limits)
            text, cut_lengths = _cut_text_fields(row, label_cols, limits)
        except RowProblem as problem:
            bad.append(_quarantine_row(pid, row["shard"], problem.reason, problem.detail))
            continue
        except (OSError, ValueError, RuntimeError) as exc:  # what a file system or a path can throw that no check named
            bad.append(_quarantine_row(pid, row["shard"], "unreadable row", f"{type(exc).__name__}: {_shown(str(exc))}"))
            continue
        seen.add(pid)
        good.append(
            {
                "product_id": pid,
                "shard": row["shard"],
                "title": text["title"],
                "description": text["description"],
                "category": text["category"],
                "image_path": str(image_path),
                "image_hash": image_hash,
                "text_hash": hashlib.sha1(f"{text['title']}\n{text['description'] or ''}".encode("utf-8", "replace")).hexdigest(),
                "metadata": text["metadata"],
                "cut_fields": json.dumps(cut_lengths, sort_keys=True) if cut_lengths else None,
                **{c: text[c] or None for c in label_cols},
            }
        )
    schema = dict(PRODUCT_SCHEMA) | {c: pl.String for c in label_cols}
    return LoadedCatalog(
        products=pl.DataFrame(good, schema=schema),
        quarantine=pl.DataFrame(bad, schema=QUARANTINE_SCHEMA),
    )


def _quarantine_row(product_id: str, shard: str, reason: str, detail: str) -> dict:
    return {"product_id": product_id, "shard": shard, "stage": "catalog", "reason": reason, "detail": detail}


def _check_row(row: dict, root: Path, seen: set[str], limits: IngestLimits) -> tuple[Path, str]:
    """(image path, sha1 of the image's bytes) of a usable row; raises `RowProblem` otherwise."""
    pid = row["product_id"]
    if row.get("row_problem"):
        raise RowProblem("malformed row", row["row_problem"])
    if not pid:
        raise RowProblem("missing id")
    if pid in seen:
        raise RowProblem("duplicate id", f"id {pid} appeared earlier in the catalog")
    if not row["title"]:
        raise RowProblem("empty title")
    if not row["image"]:
        raise RowProblem("missing image", "no image path")
    image_path = _locate_image(root, row["image"])
    return image_path, _usable_image_hash(image_path, _shown(row["image"]), limits)


def _locate_image(root: Path, relative: str) -> Path:
    """The image's real path, which must stay inside the catalog root (symlinks included)."""
    if "\x00" in relative:  # the OS cannot take such a path at all (ValueError: embedded null byte)
        raise RowProblem("bad image path", f"{_shown(relative)} holds a NUL byte")
    try:
        image_path = (root / relative).resolve()
    except RuntimeError as exc:  # how pathlib (Python 3.11) reports a symlink loop
        raise RowProblem("bad image path", f"{_shown(relative)}: symlink loop") from exc
    if not image_path.is_relative_to(root):
        raise RowProblem("image path escapes catalog", _shown(relative))
    return image_path


def _usable_image_hash(path: Path, shown: str, limits: IngestLimits) -> str:
    """sha1 of the image's bytes, streamed, once the open file is known to be a regular file
    within `max_image_bytes` that decodes as an accepted format; raises `RowProblem` if not."""
    with _open_regular_file(path, shown, limits) as handle:
        image_hash = _streamed_sha1(handle, limits.max_image_bytes)
        handle.seek(0)
        problem = image_problem(handle, limits)
    if problem:
        raise RowProblem(*problem)
    return image_hash


def image_digest(data: bytes) -> str:
    """The `image_hash` of an image's bytes (sha1, hex): what ingest validated (streamed, in
    `_streamed_sha1`), and what publishing checks a file against before copying it into the
    site."""
    return hashlib.sha1(data).hexdigest()


def _open_regular_file(path: Path, shown: str, limits: IngestLimits) -> BinaryIO:
    """Opened without blocking (opening a FIFO to read would wait for a writer forever) and
    without following a last symlink (one swapped in after `_locate_image` could leave the
    catalog); what it is gets checked on the open descriptor (`_check_file_status`), before
    a file object exists: Python refuses to make one of a directory."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise RowProblem("missing image", f"{shown} does not exist") from exc
        if exc.errno == errno.ENAMETOOLONG:
            raise RowProblem("bad image path", f"{shown}: file name too long") from exc
        if exc.errno == errno.ELOOP:
            raise RowProblem("bad image path", f"{shown}: symlink loop") from exc
        raise RowProblem("unreadable image", f"{shown}: {exc.strerror or exc}") from exc
    try:
        _check_file_status(os.fstat(fd), shown, limits)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _check_file_status(status: os.stat_result, shown: str, limits: IngestLimits) -> None:
    """Only a regular file within the byte cap is read: a directory or a device has nothing
    to read, a FIFO would block, a huge file would cost its size in time and memory."""
    kind = file_kind(status.st_mode)
    if kind != "file":
        raise RowProblem("image not a file", f"{shown} is {kind}, not a regular file")
    if status.st_size > limits.max_image_bytes:
        raise RowProblem("image too large", f"{status.st_size:,} bytes, limit {limits.max_image_bytes:,} (max_image_bytes)")
    if status.st_size == 0:
        raise RowProblem("undecodable image", f"{shown} is empty (0 bytes)")


def file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISREG, "file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return kind
    return "not a file"


def _streamed_sha1(handle: BinaryIO, max_bytes: int) -> str:
    """`image_digest` of the file's bytes, read in chunks; refuses a file that grew past the
    cap since it was checked."""
    digest = hashlib.sha1()
    total = 0
    for chunk in iter(lambda: handle.read(HASH_CHUNK_BYTES), b""):
        total += len(chunk)
        if total > max_bytes:
            raise RowProblem("image too large", f"more than {max_bytes:,} bytes (max_image_bytes; the file grew while read)")
        digest.update(chunk)
    return digest.hexdigest()


def image_problem(handle: BinaryIO, limits: IngestLimits = IngestLimits()) -> tuple[str, str] | None:
    """(reason, detail) when this open file is not a usable image, None when it is. Pillow
    tries only `limits.image_formats`: a file of another format is refused by name (its
    signature), its parser never runs."""
    accepted = limits.image_formats
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we apply our own limit
            with Image.open(handle, formats=accepted) as img:
                width, height = img.size
                if width * height > limits.max_image_pixels:
                    return "image too large", f"{width}x{height} pixels, limit {limits.max_image_pixels} (max_image_pixels)"
                img.load()
    except Image.DecompressionBombError as exc:
        return "image too large", str(exc)[:DETAIL_CHARS]
    except UnidentifiedImageError:
        handle.seek(0)
        found = signature_format(handle.read(16))
        if found and found not in accepted:
            return "image format not accepted", f"{found} file; accepted formats: {', '.join(accepted)} (image_formats)"
        return "undecodable image", f"not a readable {', '.join(accepted)} image"
    except Exception as exc:  # a decoder can throw nearly anything on hostile bytes: the row goes, not the run
        return "undecodable image", f"{type(exc).__name__}: {exc}"[:DETAIL_CHARS]
    return None


def signature_format(prefix: bytes) -> str | None:
    """The format whose signature these first bytes carry, by Pillow's own signature checks
    (they compare bytes, no parser runs); None when no format claims them."""
    Image.init()
    for name in Image.ID:
        accept = Image.OPEN[name][1]
        if accept is None:  # formats without a signature would claim any bytes
            continue
        try:
            claimed = accept(prefix)
        except Exception:  # a check that reads past a short prefix
            continue
        if claimed and not isinstance(claimed, str):  # a string is Pillow's "cannot tell" note
            return name
    return None


def cut_text(text: str | None, limit: int) -> str | None:
    """`text` when it fits in `limit` characters, else its start (at a word boundary when
    one is near) ending in "…", so a reader sees it was cut; never longer than `limit`."""
    if text is None or len(text) <= limit:
        return text
    head = text[: limit - 1]  # one character is left for the "…"
    if not text[limit - 1].isspace():  # the cut falls mid-word: end at the last space, if one is near
        space = head.rfind(" ")
        if space >= limit // 2:
            head = head[:space]
    return head.rstrip() + "…"


def _cut_text_fields(row: dict, label_cols: list[str], limits: IngestLimits) -> tuple[dict, dict[str, int]]:
    """The row's text fields cut to their limits, and {field: original length} of those cut
    (a metadata value as `metadata.<name>`)."""
    field_limits = {"title": limits.max_title_chars, "description": limits.max_description_chars, "category": limits.max_field_chars}
    field_limits |= {c: limits.max_field_chars for c in label_cols}
    text = {name: cut_text(row[name], limit) for name, limit in field_limits.items()}
    cut_lengths = {name: len(row[name]) for name, limit in field_limits.items() if row[name] is not None and len(row[name]) > limit}
    text["metadata"], metadata_lengths = _cut_metadata(row.get("metadata"), limits.max_field_chars)
    return text, cut_lengths | metadata_lengths


def _cut_metadata(metadata: str | None, limit: int) -> tuple[str | None, dict[str, int]]:
    if not metadata or len(metadata) <= limit:  # no value is longer than the JSON holding it
        return metadata, {}
    values = json.loads(metadata)
    lengths = {f"metadata.{k}": len(v) for k, v in values.items() if isinstance(v, str) and len(v) > limit}
    if not lengths:
        return metadata, {}
    cut = {k: cut_text(v, limit) if isinstance(v, str) else v for k, v in values.items()}
    return json.dumps(cut, sort_keys=True), lengths


def _shown(text: str, limit: int = 120) -> str:
    """A path or message as a quarantine detail shows it: NUL bytes visible, long ones shortened."""
    text = text.replace("\x00", "\\x00")
    return text if len(text) <= limit else f"{text[: limit - 30]}… ({len(text)} chars)"


def shard_fingerprints(table: CatalogTable, shards: Collection[str] | None = None) -> dict[str, str]:
    """A content fingerprint per shard (of `shards` only, when given: a shard's ingest
    stats its own images, not the catalog's): its rows as read plus each image file's size
    and modification time (a stat, not a read: cheap enough to run on every sensor tick).
    Any edited row, added or removed product, or replaced image changes it; a row whose
    image cannot be stat'ed changes only its own shard's fingerprint, it never raises."""
    frame = read_catalog_table(table)
    if shards is not None:
        frame = frame.filter(pl.col("shard").is_in(list(shards)))
    frame = frame.sort("shard", "product_id")
    root = table.root
    digests: dict[str, hashlib._Hash] = {}
    shard_at, image_at = frame.columns.index("shard"), frame.columns.index("image")
    for row in frame.iter_rows():
        shard, image = row[shard_at], row[image_at]
        digest = digests.setdefault(shard, hashlib.sha1())
        digest.update(repr(row).encode("utf-8", "replace"))
        digest.update(_image_stamp(root, image))
    return {shard: d.hexdigest()[:16] for shard, d in digests.items()}


def _image_stamp(root: Path, image: str | None) -> bytes:
    if not image:
        return b"-"
    try:
        status = (root / image).stat()
    except (OSError, ValueError):  # missing, a symlink loop, a name too long; ValueError: a NUL byte in the path
        return b"missing"
    return f"{status.st_size}:{status.st_mtime_ns}".encode()
