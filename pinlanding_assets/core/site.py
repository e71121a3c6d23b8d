"""The static site: an index, one page per collection, redirects, sitemap.xml and feed.json.

Layout under the site directory:

    index.html                 every page, grouped by product type, with a thumbnail
    pages/<slug>.html          title, attribute chips, product grid, related pages
    pages/<retired>.html       a redirect (meta refresh + canonical link) for a retired slug
    images/<hash>.<ext>        product images, copied under content-hash names
    sitemap.xml                live pages only
    feed.json                  JSON Feed 1.1; PinLanding fields under `_pinlanding`

Safety: every piece of catalog or model text goes through `html.escape` (quotes included)
or JSON/XML encoding; slugs must match `SAFE_SLUG` before they become file names or URLs
(others are skipped and counted); no catalog string becomes a path (images are named by
hash).

Nothing outside the catalog is ever published. `SiteBuild.stage_images` copies an image
only after reading it this way: the stored path must lie inside the catalog root; every
component below the root is opened without following links (`O_NOFOLLOW`, from the root
down, so a link swapped in anywhere on the path is refused, and nothing can swap one in
between the check and the read); the file must be a regular file of at most
`max_image_bytes`; its bytes must hash to the `image_hash` ingest recorded. A product whose
image fails gets a quarantine row (stage `publish`) and must be left off its pages
(`matching.withhold_products`) before `render`, which refuses unverified products.

Readers never see a half-written site: each publish writes a new build,
`<site>-builds/<UTC time>-<label>`, and the site path is a symlink switched to it by one
`os.replace` of a new link, so a reader resolves the old build or the new one, never none or
half. The newest `keep_builds` builds stay (a reader of the previous version finishes its
page); older ones are removed. One site takes one publish at a time: the caller serializes
them (`landing_pages` holds a lock for its whole step).
"""

from __future__ import annotations

import errno
import html
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

import polars as pl

from .catalog import QUARANTINE_SCHEMA, CatalogError, file_kind, image_digest
from .collections import display_words, pluralize

SAFE_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,120}")
IMAGE_HASH = re.compile(r"[0-9a-f]{8,128}")  # hex digests only: the hash becomes a file name
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif"}
RELATED_LINKS = 8

STYLE = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d1d1f;background:#f6f6f4}
header{background:#fff;border-bottom:1px solid #e4e4e0;padding:.9rem 2rem;display:flex;align-items:baseline;gap:1rem;flex-wrap:wrap}
header .brand{font-weight:700;font-size:1.15rem;color:#c8102e}
header .tag{color:#6b6b6b;font-size:.85rem}
main{max-width:1200px;margin:0 auto;padding:1.5rem 2rem 3rem}
a{color:#1d1d1f;text-decoration:none} a:hover{color:#c8102e}
h1{font-size:1.7rem;margin:.2rem 0 .6rem} h2{font-size:1.05rem;margin:1.8rem 0 .6rem;color:#444;text-transform:uppercase;letter-spacing:.04em}
.crumbs{font-size:.85rem;color:#6b6b6b} .crumbs a{color:#6b6b6b;text-decoration:underline}
.meta{color:#6b6b6b;font-size:.9rem;margin:.4rem 0 1.2rem}
.chip{display:inline-block;background:#fff;border:1px solid #ddd;border-radius:1rem;padding:.2rem .7rem;margin:.15rem .25rem .15rem 0;font-size:.8rem}
.chip b{font-weight:600;color:#6b6b6b;margin-right:.25rem}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:1rem}
.card{background:#fff;border-radius:10px;overflow:hidden;box-shadow:0 1px 2px rgba(0,0,0,.06);display:flex;flex-direction:column}
.card .img{height:210px;display:flex;align-items:center;justify-content:center;background:#fff}
.card img{width:100%;height:200px;object-fit:contain}
.card .noimg{color:#aaa;font-size:.8rem}
.card .body{padding:.55rem .7rem .7rem;font-size:.82rem;line-height:1.3;border-top:1px solid #f0f0ee}
.card .score{color:#2e7d32;font-size:.75rem;margin-top:.25rem}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:.8rem}
.tile{background:#fff;border-radius:10px;display:flex;align-items:center;gap:.7rem;padding:.5rem .7rem;box-shadow:0 1px 2px rgba(0,0,0,.06)}
.tile img{width:48px;height:60px;object-fit:contain;flex:none}
.tile .t{font-size:.88rem;font-weight:600} .tile .n{font-size:.75rem;color:#6b6b6b}
.filter{width:100%;max-width:420px;padding:.55rem .8rem;border:1px solid #ccc;border-radius:8px;font-size:.95rem;margin:.4rem 0 .6rem}
.related a{display:inline-block;margin:.2rem .6rem .2rem 0;font-size:.85rem;text-decoration:underline}
footer{color:#8a8a8a;font-size:.75rem;text-align:center;padding:1rem}
"""

# Client-side filter of the index: reads the tiles' own text (data never enters the script).
FILTER_SCRIPT = """
document.getElementById('filter').addEventListener('input',function(e){
  var q=e.target.value.toLowerCase();
  document.querySelectorAll('.tile').forEach(function(t){t.style.display=t.textContent.toLowerCase().indexOf(q)>=0?'':'none';});
  document.querySelectorAll('section.group').forEach(function(s){
    var any=[].some.call(s.querySelectorAll('.tile'),function(t){return t.style.display!=='none';});
    s.style.display=any?'':'none';});
});
"""


@dataclass(frozen=True)
class SiteConfig:
    base_url: str = "https://example.com/pinlanding"
    site_title: str = "PinLanding"
    # An image above this size is refused, not copied: a catalog file that grew (or a link
    # to /dev/zero) must not fill the disk. Far above any product photo.
    max_image_bytes: int = 20 * 1024 * 1024
    # Builds kept after a switch, the live one included: a reader still on the previous
    # version can finish; each one costs the site's size on disk.
    keep_builds: int = 3


@dataclass(frozen=True)
class SiteResult:
    index: Path  # through the site link: stays valid when this build is pruned
    build: Path
    pages: int
    redirects: int
    images: int
    skipped_unsafe_slugs: int

    def as_metadata(self) -> dict[str, int | str]:
        return {
            "site_build": self.build.name,
            "site_pages": self.pages,
            "site_redirects": self.redirects,
            "site_images": self.images,
            "site_skipped_unsafe_slugs": self.skipped_unsafe_slugs,
        }


@dataclass(frozen=True)
class StagedImages:
    """Images verified and copied into a build: `files` maps an image_hash to its file name
    under images/; `refused` has a quarantine row (QUARANTINE_SCHEMA, stage `publish`) for
    every product whose image failed a check."""

    files: dict[str, str]
    refused: pl.DataFrame

    @property
    def refused_ids(self) -> set[str]:
        return set(self.refused.get_column("product_id").to_list())

    def refused_reasons(self) -> dict[str, int]:
        return dict(self.refused.group_by("reason").len().sort("reason").iter_rows())


class ImageRefused(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def esc(text: object) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def is_safe_slug(slug: object) -> bool:
    return isinstance(slug, str) and SAFE_SLUG.fullmatch(slug) is not None


def builds_dir(site_dir: Path) -> Path:
    """Where the versions of `site_dir` live: `<site>-builds/`, beside it."""
    return site_dir.with_name(site_dir.name + "-builds")


class SiteBuild:
    """One new version of the site, switched in whole when the `with` block ends without an
    error (discarded otherwise: the live site stays as it was)::

        with SiteBuild(site_dir, run_id, config) as build:
            images = build.stage_images(products_on_pages, catalog_root)
            pages = withhold_products(pages, images.refused_ids, matching)
            result = build.render(collections, pages, products, retired, images)
    """

    def __init__(self, site_dir: Path, label: str, config: SiteConfig):
        if config.keep_builds < 1:
            raise ValueError(f"keep_builds must be at least 1 (the live build), got {config.keep_builds}")
        if config.max_image_bytes < 1:
            raise ValueError(f"max_image_bytes must be positive, got {config.max_image_bytes}")
        self.site_dir = Path(site_dir)
        self.config = config
        # Names sort by time (pruning keeps the newest); the label (a run id) says who built it.
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        self.dir = builds_dir(self.site_dir) / f"{stamp}-{re.sub(r'[^A-Za-z0-9-]', '-', label)[:64]}"
        self._rendered = False

    def __enter__(self) -> "SiteBuild":
        (self.dir / "pages").mkdir(parents=True)
        (self.dir / "images").mkdir()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None or not self._rendered:
            shutil.rmtree(self.dir, ignore_errors=True)
            if exc_type is None:
                raise ValueError("the site build was never rendered; the live site is unchanged")
            return False
        switch_site(self.site_dir, self.dir)
        prune_builds(builds_dir(self.site_dir), self.dir, self.config.keep_builds)
        return False

    def stage_images(self, products: pl.DataFrame, catalog_root: Path) -> StagedImages:
        """Verify and copy the image of each product (product_id, shard, image_path,
        image_hash: the products on the pages). Each distinct file is read once."""
        root = Path(catalog_root).resolve()
        try:
            root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            # Not one product's fault: refusing every image would empty the site.
            raise CatalogError(f"cannot open the catalog {root} to verify its images: {exc.strerror}") from None
        files: dict[str, str] = {}
        outcomes: dict[tuple, ImageRefused | None] = {}
        refused = []
        try:
            rows = products.select("product_id", "shard", "image_path", "image_hash").sort("product_id")
            for row in rows.iter_rows(named=True):
                key = (row["image_path"], row["image_hash"])
                if key not in outcomes:
                    outcomes[key] = self._stage_image(root_fd, root, *key, files)
                problem = outcomes[key]
                if problem is not None:
                    refused.append({"product_id": row["product_id"], "shard": row["shard"], "stage": "publish", "reason": problem.reason, "detail": problem.detail})
        finally:
            os.close(root_fd)
        return StagedImages(files, pl.DataFrame(refused, schema=QUARANTINE_SCHEMA))

    def _stage_image(self, root_fd: int, root: Path, image_path: str | None, image_hash: str | None, files: dict[str, str]) -> ImageRefused | None:
        try:
            data = read_catalog_image(root_fd, root, image_path, image_hash, self.config.max_image_bytes)
        except ImageRefused as refusal:
            return refusal
        if image_hash not in files:
            suffix = Path(image_path).suffix.lower()
            name = f"{image_hash}{suffix if suffix in IMAGE_SUFFIXES else '.img'}"
            (self.dir / "images" / name).write_bytes(data)  # the verified bytes, never the path again
            files[image_hash] = name
        return None

    def render(
        self,
        collections: pl.DataFrame,
        pages: pl.DataFrame,
        products: pl.DataFrame,
        retired: pl.DataFrame | None,
        images: StagedImages,
    ) -> SiteResult:
        """collections: slug, title, attributes; pages: slug, product_id, relevance, rank
        (without the refused products); products: product_id, title, image_hash; retired:
        slug, title, redirect_to."""
        config = self.config
        page_slugs = pl.Series(sorted(set(pages.get_column("slug").to_list())), dtype=pl.String)
        shown_all = collections.filter(pl.col("slug").is_in(page_slugs))
        safe = shown_all.filter(pl.col("slug").map_elements(is_safe_slug, return_dtype=pl.Boolean)) if shown_all.height else shown_all
        skipped = shown_all.height - safe.height
        shown = safe.with_columns(_group_column(safe)).sort("group", "title")
        members = pages.filter(pl.col("slug").is_in(shown.get_column("slug"))).join(
            products.select("product_id", "title", "image_hash"), on="product_id", how="left"
        )
        members = members.with_columns(pl.col("image_hash").replace_strict(images.files, default=None, return_dtype=pl.String).alias("image_file"))
        refused = pl.Series(sorted(images.refused_ids), dtype=pl.String)
        unverified = members.filter(pl.col("image_file").is_null() | pl.col("product_id").is_in(refused))
        if unverified.height:
            raise ValueError(
                f"{unverified.height} page placements have no verified image (e.g. {unverified.get_column('product_id').head(3).to_list()}): "
                "stage_images, then withhold_products, before render"
            )
        by_slug = {slug: frame.sort("rank") for (slug,), frame in members.group_by("slug")}
        generated_at = datetime.now(timezone.utc)

        feed_items = []
        for row in shown.iter_rows(named=True):
            items = by_slug.get(row["slug"], members.head(0))
            related = shown.filter((pl.col("group") == row["group"]) & (pl.col("slug") != row["slug"])).head(RELATED_LINKS)
            (self.dir / "pages" / f"{row['slug']}.html").write_text(_collection_html(row, items, related, config), encoding="utf-8")
            feed_items.append(_feed_item(row, items, config, generated_at))

        redirects = _write_redirects(self.dir / "pages", retired, set(shown.get_column("slug").to_list()), config)
        (self.dir / "index.html").write_text(_index_html(shown, by_slug, config, generated_at), encoding="utf-8")
        (self.dir / "sitemap.xml").write_text(_sitemap(shown, config, generated_at), encoding="utf-8")
        feed = {
            "version": "https://jsonfeed.org/version/1.1",
            "title": f"{config.site_title} collections",
            "home_page_url": f"{config.base_url}/index.html",
            "feed_url": f"{config.base_url}/feed.json",
            "items": feed_items,
            "_pinlanding": {"generated_at": generated_at.isoformat(), "redirects": redirects},
        }
        (self.dir / "feed.json").write_text(json.dumps(feed, indent=1, ensure_ascii=False), encoding="utf-8")
        self._rendered = True
        return SiteResult(self.site_dir / "index.html", self.dir, len(feed_items), len(redirects), len(set(images.files.values())), skipped)


def read_catalog_image(root_fd: int, root: Path, image_path: str | None, image_hash: str | None, max_bytes: int) -> bytes:
    """The bytes of a product image, or `ImageRefused` with the reason: outside the catalog,
    a symlink anywhere below the root, not a regular file (a FIFO, a device), larger than
    `max_bytes`, or not the bytes ingest validated (`image_hash`)."""
    if not image_path or not image_hash:
        raise ImageRefused("image missing", "no image recorded for the product")
    if not IMAGE_HASH.fullmatch(image_hash):
        raise ImageRefused("image not verifiable", f"recorded image hash {image_hash[:80]!r} is not a content hash")
    parts = _parts_below(root, image_path)
    shown = "/".join(parts)
    fd = _open_without_links(root_fd, parts, shown)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ImageRefused("image not a regular file", f"{shown} is {file_kind(info.st_mode)}")
        if info.st_size > max_bytes:
            raise ImageRefused("image too large", f"{shown}: {info.st_size} bytes, limit {max_bytes}")
        data = _read_at_most(fd, max_bytes + 1)  # the size can change after fstat
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ImageRefused("image too large", f"{shown}: more than {max_bytes} bytes")
    digest = image_digest(data)
    if digest != image_hash:
        raise ImageRefused("image changed since ingest", f"{shown}: content hash {digest[:12]}, ingest validated {image_hash[:12]}")
    return data


def _parts_below(root: Path, image_path: str) -> tuple[str, ...]:
    """The path's components below the catalog root; stored paths are absolute (ingest
    resolved them), a relative one is taken relative to the root."""
    path = Path(image_path)
    try:
        parts = (path if path.is_absolute() else root / path).relative_to(root).parts
    except ValueError:
        raise ImageRefused("image outside catalog", f"{image_path} is not under the catalog {root}") from None
    if not parts or ".." in parts:
        raise ImageRefused("image outside catalog", f"{image_path} is not under the catalog {root}")
    return parts


def _open_without_links(root_fd: int, parts: tuple[str, ...], shown: str) -> int:
    """Open root/parts one component at a time, each relative to its parent's descriptor and
    with O_NOFOLLOW: no link is followed anywhere, even one swapped in after ingest."""
    dir_fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            child = _open_component(dir_fd, part, os.O_DIRECTORY, shown)
            os.close(dir_fd)
            dir_fd = child
        # O_NONBLOCK: opening a FIFO for reading must not wait for a writer (fstat refuses it).
        return _open_component(dir_fd, parts[-1], os.O_NONBLOCK, shown)
    finally:
        os.close(dir_fd)


def _open_component(dir_fd: int, name: str, flags: int, shown: str) -> int:
    try:
        return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | flags, dir_fd=dir_fd)
    except OSError as exc:
        try:
            is_link = stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        except OSError:
            is_link = False
        # O_NOFOLLOW on a link fails with ELOOP, or ENOTDIR with O_DIRECTORY.
        if is_link or exc.errno == errno.ELOOP:
            raise ImageRefused("image is a symlink", f"{shown}: {name} is a symbolic link (never followed when publishing)") from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise ImageRefused("image missing", f"{shown}: {exc.strerror}") from None
        raise ImageRefused("image unreadable", f"{shown}: {exc.strerror}") from None


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit:
        chunk = os.read(fd, min(1 << 20, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def switch_site(site_dir: Path, build: Path) -> None:
    """Point `site_dir` (a symlink) at `build` with one rename of a new link over the old
    one: a reader resolving the site path gets the old build or the new one."""
    link = site_dir.with_name(f".{site_dir.name}.{build.name}.link")
    link.unlink(missing_ok=True)  # left by a publish that crashed right here
    os.symlink(os.path.relpath(build, site_dir.parent), link)  # relative: the data home can move
    if site_dir.is_dir() and not site_dir.is_symlink():
        # A site from before versioned builds is a real directory, which a rename cannot
        # replace by a link: it becomes the oldest build (pruned in turn). Readers find no
        # site for the instant between these two renames, once.
        os.rename(site_dir, builds_dir(site_dir) / f"0-legacy-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}")
    os.replace(link, site_dir)


def prune_builds(builds: Path, live: Path, keep: int) -> list[Path]:
    """Remove the builds older than the live one beyond the newest `keep` (the live one
    counts). Newer ones are publishes in progress (or just switched in) and stay."""
    older = sorted(p for p in builds.iterdir() if p.is_dir() and not p.is_symlink() and p.name < live.name)
    doomed = older[: max(len(older) - (keep - 1), 0)]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def _group_column(collections: pl.DataFrame) -> pl.Expr:
    """The product type of each collection (the index groups by it)."""
    groups = {
        row["slug"]: next((a["value"] for a in row["attributes"] or [] if a["key"] == "product_type"), "other")
        for row in collections.select("slug", "attributes").iter_rows(named=True)
    }
    return pl.col("slug").replace_strict(groups, default="other", return_dtype=pl.String).alias("group")


def _page(title: str, body: str, config: SiteConfig, depth: int, head_extra: str = "", script: str = "") -> str:
    home = "../" * depth + "index.html"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)}</title>{head_extra}<style>{STYLE}</style></head><body>"
        f'<header><a class="brand" href="{home}">{esc(config.site_title)}</a>'
        '<span class="tag">collections generated from the catalog itself</span></header>'
        f"<main>{body}</main><footer>Static site generated by PinLanding.</footer>"
        + (f"<script>{script}</script>" if script else "")
        + "</body></html>"
    )


def _chips(attributes: list[dict] | None) -> str:
    return "".join(
        f'<span class="chip"><b>{esc(a["key"].replace("_", " "))}</b>{esc(a["value"])}</span>' for a in attributes or []
    )


def _image_tag(item: dict, prefix: str, css_class: str = "") -> str:
    if not item.get("image_file"):
        return '<span class="noimg">no image</span>'
    cls = f' class="{css_class}"' if css_class else ""
    return f'<img{cls} src="{prefix}images/{esc(item["image_file"])}" alt="{esc(item.get("title"))}" loading="lazy">'


def _collection_html(collection: dict, items: pl.DataFrame, related: pl.DataFrame, config: SiteConfig) -> str:
    cards = []
    for item in items.iter_rows(named=True):
        cards.append(
            f'<div class="card"><div class="img">{_image_tag(item, "../")}</div>'
            f'<div class="body">{esc(item["title"])}<div class="score">match {item["relevance"] * 100:.0f}%</div></div></div>'
        )
    related_links = "".join(f'<a href="{esc(r["slug"])}.html">{esc(r["title"])}</a>' for r in related.iter_rows(named=True))
    body = (
        f'<div class="crumbs"><a href="../index.html">All collections</a> › {esc(display_words(pluralize(collection["group"])))}</div>'
        f"<h1>{esc(collection['title'])}</h1><div>{_chips(collection['attributes'])}</div>"
        f'<p class="meta">{items.height} products, best matches first</p>'
        f'<div class="grid">{"".join(cards)}</div>'
        + (f'<h2>Related collections</h2><div class="related">{related_links}</div>' if related_links else "")
    )
    canonical = f'<link rel="canonical" href="{esc(config.base_url)}/pages/{esc(collection["slug"])}.html">'
    return _page(collection["title"], body, config, depth=1, head_extra=canonical)


def _index_html(collections: pl.DataFrame, by_slug: dict[str, pl.DataFrame], config: SiteConfig, generated_at: datetime) -> str:
    sections = []
    for (group,), frame in collections.group_by("group", maintain_order=True):
        tiles = []
        for row in frame.iter_rows(named=True):
            items = by_slug.get(row["slug"])
            first = items.row(0, named=True) if items is not None and items.height else {}
            count = items.height if items is not None else 0
            tiles.append(
                f'<a class="tile" href="pages/{esc(row["slug"])}.html">{_image_tag(first, "")}'
                f'<span><span class="t">{esc(row["title"])}</span><br><span class="n">{count} products</span></span></a>'
            )
        sections.append(f'<section class="group"><h2>{esc(display_words(pluralize(group)))} ({frame.height})</h2><div class="tiles">{"".join(tiles)}</div></section>')
    body = (
        f"<h1>{collections.height} collections</h1>"
        f'<p class="meta">Updated {esc(generated_at.strftime("%Y-%m-%d %H:%M UTC"))}.</p>'
        '<input id="filter" class="filter" type="search" placeholder="Filter collections (e.g. black watches)">'
        + "".join(sections)
    )
    return _page(f"{config.site_title}: all collections", body, config, depth=0, script=FILTER_SCRIPT)


def _feed_item(row: dict, items: pl.DataFrame, config: SiteConfig, generated_at: datetime) -> dict:
    url = f"{config.base_url}/pages/{row['slug']}.html"
    first = items.row(0, named=True) if items.height else {}
    item = {
        "id": row["slug"],
        "url": url,
        "title": row["title"],
        "content_text": f"{row['title']}: {items.height} products.",
        "date_modified": generated_at.isoformat(),
        "tags": [a["value"] for a in row["attributes"] or []],
        "_pinlanding": {
            "attributes": row["attributes"] or [],
            "products": [{"product_id": r["product_id"], "rank": r["rank"], "relevance": round(r["relevance"], 6)} for r in items.iter_rows(named=True)],
        },
    }
    if first.get("image_file"):
        item["image"] = f"{config.base_url}/images/{first['image_file']}"
    return item


def _write_redirects(pages_dir: Path, retired: pl.DataFrame | None, live: set[str], config: SiteConfig) -> list[dict]:
    """A redirect page per retired slug that is not live again."""
    if retired is None or retired.is_empty():
        return []
    out = []
    for row in retired.iter_rows(named=True):
        slug, target = row["slug"], row.get("redirect_to")
        if not is_safe_slug(slug) or slug in live:
            continue
        href = f"{target}.html" if target in live else "../index.html"
        absolute = f"{config.base_url}/pages/{target}.html" if target in live else f"{config.base_url}/index.html"
        head = f'<meta http-equiv="refresh" content="0; url={esc(href)}"><link rel="canonical" href="{esc(absolute)}"><meta name="robots" content="noindex">'
        body = f'<h1>This collection moved</h1><p class="meta">{esc(row.get("title"))} is no longer published. <a href="{esc(href)}">Continue</a>.</p>'
        (pages_dir / f"{slug}.html").write_text(_page(row.get("title") or "Moved", body, config, depth=1, head_extra=head), encoding="utf-8")
        out.append({"slug": slug, "redirect_to": target if target in live else None})
    return out


def _sitemap(collections: pl.DataFrame, config: SiteConfig, generated_at: datetime) -> str:
    lastmod = generated_at.strftime("%Y-%m-%d")
    urls = "".join(
        f"<url><loc>{xml_escape(config.base_url)}/pages/{xml_escape(slug)}.html</loc><lastmod>{lastmod}</lastmod></url>"
        for slug in collections.get_column("slug").to_list()
    )
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>\n'
