"""The static site: an index, one page per collection, redirects, sitemap.xml and feed.json.

Layout under the site directory:

    index.html                 every page, grouped by product type, with a thumbnail
    pages/<slug>.html          title, attribute chips, product grid, related pages by
                               relation (`related_pages`); a style concept's page shows
                               instead its decomposition ("why these products": each
                               attribute combination, its products, and on each product
                               card the combination it matched); for search engines and link
                               previews a meta description written from the attributes and
                               the product count, schema.org JSON-LD (a CollectionPage whose
                               mainEntity is an ItemList of its products) and Open Graph
                               title, description and image; a thin page (`page_quality`)
                               is `noindex`
    pages/<retired>.html       a redirect (meta refresh + canonical link) for a retired or
                               merged slug
    images/<hash>.<ext>        product images, copied under content-hash names
    sitemap.xml                live, indexed pages only
    feed.json                  JSON Feed 1.1; PinLanding fields under `_pinlanding`

Safety: pages and the sitemap render through the Jinja2 templates in `templates/` with
autoescape on, so every piece of catalog or model text is escaped (quotes included); the
feed is JSON-encoded; so is the JSON-LD, with <, > and & written as JSON unicode escapes,
so no text can close its script element; slugs must match `SAFE_SLUG` before they become
file names or URLs (others are skipped and counted); no catalog string becomes a path (images are named by
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
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from .catalog import QUARANTINE_SCHEMA, CatalogError, file_kind, image_digest
from .page_dedup import page_overlaps
from .related_pages import RELATIONS, related_collections
from .text_rules import display_plural, display_words

SAFE_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,120}")
IMAGE_HASH = re.compile(r"[0-9a-f]{8,128}")  # hex digests only: the hash becomes a file name
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif"}
RELATED_PER_RELATION = 4  # links per relation (broader, narrower, other colours, shared products)
META_DESCRIPTION_CHARS = 160  # what search result snippets show
CONCEPT_GROUP = "style concept"  # the index group of concept pages
RELATION_HEADINGS = {"broader": "Broader", "narrower": "Narrower", "other colours": "In other colours", "shared products": "Sharing products"}

# Every template is HTML or XML, so every {{ value }} is escaped (quotes included); None
# renders as nothing, not "None". The templates ship in the package (pyproject package-data).
TEMPLATES = Environment(
    loader=PackageLoader("pinlanding_assets.core", "templates"),
    autoescape=True,
    finalize=lambda value: "" if value is None else value,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


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
    noindex: int = 0  # pages rendered noindex and left out of the sitemap
    related_links: int = 0

    def as_metadata(self) -> dict[str, int | str]:
        return {
            "site_build": self.build.name,
            "site_pages": self.pages,
            "site_redirects": self.redirects,
            "site_images": self.images,
            "site_skipped_unsafe_slugs": self.skipped_unsafe_slugs,
            "site_noindex_pages": self.noindex,
            "site_related_links": self.related_links,
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
        noindex: set[str] | frozenset[str] = frozenset(),
        concepts: dict[str, dict] | None = None,
    ) -> SiteResult:
        """collections: slug, title, attributes; pages: slug, product_id, relevance, rank
        (without the refused products); products: product_id, title, image_hash; retired:
        slug, title, redirect_to (retired and merged slugs); noindex: thin pages, rendered
        noindex and left out of the sitemap; concepts: slug -> `style_concepts.concept_views`
        for the pages that are style concepts."""
        concepts = concepts or {}
        config = self.config
        page_slugs = pl.Series(sorted(set(pages.get_column("slug").to_list())), dtype=pl.String)
        shown_all = collections.filter(pl.col("slug").is_in(page_slugs))
        safe = shown_all.filter(pl.col("slug").map_elements(is_safe_slug, return_dtype=pl.Boolean)) if shown_all.height else shown_all
        skipped = shown_all.height - safe.height
        shown = safe.with_columns(_group_column(safe, set(concepts))).sort("group", "title")
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

        shown_pages = pages.filter(pl.col("slug").is_in(shown.get_column("slug").implode()))
        sizes = {slug: frame.height for slug, frame in by_slug.items()}
        related = related_collections(shown, sizes, page_overlaps(shown_pages), RELATED_PER_RELATION)
        related_by_slug = {slug: frame for (slug,), frame in related.group_by("slug")}
        titles = dict(shown.select("slug", "title").iter_rows())

        feed_items = []
        for row in shown.iter_rows(named=True):
            items = by_slug.get(row["slug"], members.head(0))
            links = _related_sections(related_by_slug.get(row["slug"]), titles, sizes)
            page = _collection_html(row, items, links, config, indexed=row["slug"] not in noindex, concept=concepts.get(row["slug"]))
            (self.dir / "pages" / f"{row['slug']}.html").write_text(page, encoding="utf-8")
            feed_items.append(_feed_item(row, items, config, generated_at))

        redirects = _write_redirects(self.dir / "pages", retired, set(shown.get_column("slug").to_list()), config)
        (self.dir / "index.html").write_text(_index_html(shown, by_slug, config, generated_at), encoding="utf-8")
        indexed = shown.filter(~pl.col("slug").is_in(pl.Series(sorted(noindex), dtype=pl.String).implode()))
        (self.dir / "sitemap.xml").write_text(_sitemap(indexed, config, generated_at), encoding="utf-8")
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
        return SiteResult(
            self.site_dir / "index.html", self.dir, len(feed_items), len(redirects), len(set(images.files.values())), skipped, shown.height - indexed.height, related.height
        )


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


def _group_column(collections: pl.DataFrame, concept_slugs: set[str] = frozenset()) -> pl.Expr:
    """The product type of each collection (the index groups by it); style concepts form a
    group of their own."""
    groups = {
        row["slug"]: CONCEPT_GROUP if row["slug"] in concept_slugs else next((a["value"] for a in row["attributes"] or [] if a["key"] == "product_type"), "other")
        for row in collections.select("slug", "attributes").iter_rows(named=True)
    }
    return pl.col("slug").replace_strict(groups, default="other", return_dtype=pl.String).alias("group")


def _render(template: str, config: SiteConfig, depth: int, **values) -> str:
    """A page of the site; `depth` is how many folders below the site root it lies."""
    return TEMPLATES.get_template(template).render(site_title=config.site_title, home="../" * depth + "index.html", **values)


def _group_name(group: str) -> str:
    return display_words(display_plural(group))


def _related_sections(related: pl.DataFrame | None, titles: dict[str, str], sizes: dict[str, int]) -> list[dict]:
    """The related links of a page, one section per relation in `RELATIONS` order."""
    if related is None or related.is_empty():
        return []
    sections = []
    for relation in RELATIONS:
        rows = related.filter(pl.col("relation") == relation).sort("position")
        if rows.height:
            links = [{"slug": s, "title": titles[s], "count": sizes.get(s, 0)} for s in rows.get_column("related_slug").to_list()]
            sections.append({"relation": relation, "heading": RELATION_HEADINGS[relation], "links": links})
    return sections


def meta_description(title: str, attributes: list[dict], n_products: int) -> str:
    """"Black Checked Shirts for Men: 24 products. Color black, pattern checked, product
    type shirt, gender men." at most `META_DESCRIPTION_CHARS` long (cut at a word)."""
    facts = ", ".join(f"{a['key'].replace('_', ' ')} {a['value']}" for a in attributes)
    text = f"{title}: {n_products} products, best matches first." + (f" {facts[:1].upper()}{facts[1:]}." if facts else "")
    if len(text) <= META_DESCRIPTION_CHARS:
        return text
    return text[: META_DESCRIPTION_CHARS - 1].rsplit(" ", 1)[0].rstrip(",.") + "…"


def structured_data(title: str, description: str, url: str, products: list[dict], image_base: str) -> dict:
    """schema.org CollectionPage whose mainEntity is the ItemList of its products, in rank order."""
    items = []
    for p in products:
        product = {"@type": "Product", "name": p["title"] or p["product_id"], "sku": p["product_id"]}
        if p.get("image_file"):
            product["image"] = f"{image_base}/images/{p['image_file']}"
        items.append({"@type": "ListItem", "position": p["rank"], "item": product})
    return {
        "@context": "https://schema.org",
        "@type": "CollectionPage",
        "name": title,
        "description": description,
        "url": url,
        "mainEntity": {"@type": "ItemList", "numberOfItems": len(items), "itemListOrder": "https://schema.org/ItemListOrderDescending", "itemListElement": items},
    }


def script_json(data: dict) -> Markup:
    """JSON for a <script> element: <, >, & and ' as JSON unicode escapes (the same JSON), so no
    value can end the element or open a comment; safe to mark as markup."""
    text = json.dumps(data, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").replace("'", "\\u0027")
    return Markup(text)


def _collection_html(collection: dict, items: pl.DataFrame, related: list[dict], config: SiteConfig, indexed: bool = True, concept: dict | None = None) -> str:
    products = list(items.iter_rows(named=True))
    if concept is not None:
        products = [p | {"combination": concept["matched"].get(p["product_id"])} for p in products]
    url = f"{config.base_url}/pages/{collection['slug']}.html"
    attributes = collection["attributes"] or []
    description = meta_description(collection["title"], attributes, len(products))
    first_image = next((p["image_file"] for p in products if p.get("image_file")), None)
    return _render(
        "collection.html.j2",
        config,
        depth=1,
        title=collection["title"],
        slug=collection["slug"],
        base_url=config.base_url,
        url=url,
        description=description,
        og_image=f"{config.base_url}/images/{first_image}" if first_image else None,
        indexed=indexed,
        structured_data=script_json(structured_data(collection["title"], description, url, products, config.base_url)),
        group_name=_group_name(collection["group"]),
        attributes=attributes,
        products=products,
        related=related,
        concept=concept,
    )


def _index_html(collections: pl.DataFrame, by_slug: dict[str, pl.DataFrame], config: SiteConfig, generated_at: datetime) -> str:
    groups = []
    for (group,), frame in collections.group_by("group", maintain_order=True):
        tiles = []
        for row in frame.iter_rows(named=True):
            items = by_slug.get(row["slug"])
            first = items.row(0, named=True) if items is not None and items.height else {}
            count = items.height if items is not None else 0
            tiles.append({"slug": row["slug"], "title": row["title"], "count": count, "image_file": first.get("image_file"), "image_alt": first.get("title")})
        groups.append({"name": _group_name(group), "tiles": tiles})
    return _render(
        "index.html.j2",
        config,
        depth=0,
        title=f"{config.site_title}: all collections",
        n_collections=collections.height,
        updated=generated_at.strftime("%Y-%m-%d %H:%M UTC"),
        groups=groups,
    )


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
        page = _render("redirect.html.j2", config, depth=1, title=row.get("title") or "Moved", retired_title=row.get("title"), href=href, canonical=absolute)
        (pages_dir / f"{slug}.html").write_text(page, encoding="utf-8")
        out.append({"slug": slug, "redirect_to": target if target in live else None})
    return out


def _sitemap(collections: pl.DataFrame, config: SiteConfig, generated_at: datetime) -> str:
    return TEMPLATES.get_template("sitemap.xml.j2").render(
        base_url=config.base_url, slugs=collections.get_column("slug").to_list(), lastmod=generated_at.strftime("%Y-%m-%d")
    )
