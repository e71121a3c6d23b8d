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
hash). The site is built in a sibling directory and swapped in, so a reader never sees a
half-written site.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

import polars as pl

from .collections import display_words, pluralize

SAFE_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,120}")
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


@dataclass(frozen=True)
class SiteResult:
    index: Path
    pages: int
    redirects: int
    images: int
    missing_images: int
    skipped_unsafe_slugs: int

    def as_metadata(self) -> dict[str, int | str]:
        return {
            "site_pages": self.pages,
            "site_redirects": self.redirects,
            "site_images": self.images,
            "site_missing_images": self.missing_images,
            "site_skipped_unsafe_slugs": self.skipped_unsafe_slugs,
        }


def esc(text: object) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def is_safe_slug(slug: object) -> bool:
    return isinstance(slug, str) and SAFE_SLUG.fullmatch(slug) is not None


def render_site(
    out_dir: Path,
    collections: pl.DataFrame,
    pages: pl.DataFrame,
    products: pl.DataFrame,
    config: SiteConfig,
    retired: pl.DataFrame | None = None,
) -> SiteResult:
    """collections: slug, title, attributes; pages: slug, product_id, relevance, rank;
    products: product_id, title, image_path, image_hash; retired: slug, title,
    redirect_to. Replaces `out_dir` as a whole."""
    out_dir = Path(out_dir)
    staging = out_dir.with_name(out_dir.name + ".building")
    if staging.exists():
        shutil.rmtree(staging)
    (staging / "pages").mkdir(parents=True)
    (staging / "images").mkdir()

    page_slugs = set(pages.get_column("slug").unique().to_list()) if not pages.is_empty() else set()
    shown_all = collections.filter(pl.col("slug").is_in(list(page_slugs)))
    safe = shown_all.filter(pl.col("slug").map_elements(is_safe_slug, return_dtype=pl.Boolean)) if shown_all.height else shown_all
    skipped = shown_all.height - safe.height
    shown = safe.with_columns(_group_column(safe)).sort("group", "title")
    members = pages.filter(pl.col("slug").is_in(shown.get_column("slug").to_list())).join(
        products.select("product_id", "title", "image_path", "image_hash"), on="product_id", how="left"
    )
    image_names, missing = _copy_images(staging / "images", members)
    members = members.with_columns(pl.col("image_hash").replace_strict(image_names, default=None, return_dtype=pl.String).alias("image_file"))
    by_slug = {slug: frame.sort("rank") for (slug,), frame in members.group_by("slug")}
    generated_at = datetime.now(timezone.utc)

    feed_items = []
    for row in shown.iter_rows(named=True):
        items = by_slug.get(row["slug"], members.head(0))
        related = shown.filter((pl.col("group") == row["group"]) & (pl.col("slug") != row["slug"])).head(RELATED_LINKS)
        (staging / "pages" / f"{row['slug']}.html").write_text(_collection_html(row, items, related, config), encoding="utf-8")
        feed_items.append(_feed_item(row, items, config, generated_at))

    redirects = _write_redirects(staging / "pages", retired, set(shown.get_column("slug").to_list()), config)
    (staging / "index.html").write_text(_index_html(shown, by_slug, config, generated_at), encoding="utf-8")
    (staging / "sitemap.xml").write_text(_sitemap(shown, config, generated_at), encoding="utf-8")
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": f"{config.site_title} collections",
        "home_page_url": f"{config.base_url}/index.html",
        "feed_url": f"{config.base_url}/feed.json",
        "items": feed_items,
        "_pinlanding": {"generated_at": generated_at.isoformat(), "redirects": redirects},
    }
    (staging / "feed.json").write_text(json.dumps(feed, indent=1, ensure_ascii=False), encoding="utf-8")

    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)
    return SiteResult(out_dir / "index.html", len(feed_items), len(redirects), len(set(image_names.values())), missing, skipped)


def _group_column(collections: pl.DataFrame) -> pl.Expr:
    """The product type of each collection (the index groups by it)."""
    groups = {
        row["slug"]: next((a["value"] for a in row["attributes"] or [] if a["key"] == "product_type"), "other")
        for row in collections.select("slug", "attributes").iter_rows(named=True)
    }
    return pl.col("slug").replace_strict(groups, default="other", return_dtype=pl.String).alias("group")


def _copy_images(images_dir: Path, members: pl.DataFrame) -> tuple[dict[str, str], int]:
    """Copy each distinct image once; returns image_hash -> file name, and how many failed."""
    names: dict[str, str] = {}
    missing = 0
    for image_hash, image_path in members.select("image_hash", "image_path").unique().iter_rows():
        if not image_hash or not image_path or not re.fullmatch(r"[0-9A-Za-z]+", image_hash):
            missing += 1
            continue
        suffix = Path(image_path).suffix.lower()
        name = f"{image_hash}{suffix if suffix in IMAGE_SUFFIXES else '.img'}"
        try:
            if not (images_dir / name).exists():
                shutil.copyfile(image_path, images_dir / name)
        except OSError:
            missing += 1  # the card shows a placeholder; the page still renders
            continue
        names[image_hash] = name
    return names, missing


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
