"""The static site: an index, one page per collection, sitemap.xml and feed.json.

Every piece of catalog or model text goes through `html.escape` (or JSON/XML encoding);
image files are copied under content-hash names, so no catalog string becomes a path.
"""

from __future__ import annotations

import html
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

import polars as pl

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
a{color:#b60000;text-decoration:none} h1{font-size:1.6rem}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(140px,1fr));gap:1rem}
.card{border:1px solid #ddd;border-radius:8px;padding:.5rem;font-size:.8rem}
.card img{width:100%;height:160px;object-fit:contain;background:#fafafa}
.chip{display:inline-block;background:#f1f1f1;border-radius:1rem;padding:.15rem .6rem;margin:.15rem;font-size:.8rem}
ul.pages{columns:3;list-style:none;padding:0} ul.pages li{margin:.3rem 0}
"""


@dataclass(frozen=True)
class SiteConfig:
    base_url: str = "https://example.com/pinlanding"


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )


def render_site(out_dir: Path, collections: pl.DataFrame, pages: pl.DataFrame, products: pl.DataFrame, config: SiteConfig) -> dict[str, int | str]:
    """collections: slug, title, attributes, support; pages: slug, product_id, relevance,
    rank; products: product_id, title, image_path, image_hash. Rewrites `out_dir`."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    (out_dir / "pages").mkdir(parents=True)
    (out_dir / "images").mkdir()
    page_slugs = pages.get_column("slug").unique().to_list() if not pages.is_empty() else []
    shown = collections.filter(pl.col("slug").is_in(page_slugs)).sort("title")
    members = pages.join(products.select("product_id", "title", "image_path", "image_hash"), on="product_id", how="left")
    images_copied = _copy_images(out_dir / "images", members)
    feed = []
    for row in shown.iter_rows(named=True):
        items = members.filter(pl.col("slug") == row["slug"]).sort("rank")
        (out_dir / "pages" / f"{row['slug']}.html").write_text(_collection_html(row, items), encoding="utf-8")
        feed.append(
            {
                "slug": row["slug"],
                "title": row["title"],
                "url": f"{config.base_url}/pages/{row['slug']}.html",
                "attributes": row["attributes"],
                "products": items.get_column("product_id").to_list(),
            }
        )
    (out_dir / "index.html").write_text(_index_html(shown, pages), encoding="utf-8")
    (out_dir / "sitemap.xml").write_text(_sitemap(shown, config), encoding="utf-8")
    (out_dir / "feed.json").write_text(json.dumps({"version": 1, "pages": feed}, indent=1), encoding="utf-8")
    return {"pages": len(feed), "images": images_copied, "index": str(out_dir / "index.html")}


def _image_name(image_hash: str, image_path: str) -> str:
    suffix = Path(image_path).suffix.lower()
    return f"{image_hash}{suffix if suffix in {'.jpg', '.jpeg', '.png', '.webp', '.gif'} else '.img'}"


def _copy_images(images_dir: Path, members: pl.DataFrame) -> int:
    count = 0
    for image_hash, image_path in members.select("image_hash", "image_path").unique().iter_rows():
        if not image_hash or not image_path:
            continue
        target = images_dir / _image_name(image_hash, image_path)
        if not target.exists():
            shutil.copyfile(image_path, target)
            count += 1
    return count


def _chips(attributes: list[dict]) -> str:
    return "".join(f'<span class="chip">{html.escape(a["key"].replace("_", " "))}: {html.escape(a["value"])}</span>' for a in attributes)


def _collection_html(collection: dict, items: pl.DataFrame) -> str:
    cards = []
    for item in items.iter_rows(named=True):
        src = f"../images/{_image_name(item['image_hash'] or '', item['image_path'] or '')}"
        cards.append(
            f'<div class="card"><img src="{html.escape(src)}" alt="{html.escape(item["title"] or "")}" loading="lazy">'
            f'<div>{html.escape(item["title"] or "")}</div></div>'
        )
    body = (
        f'<p><a href="../index.html">All collections</a></p><h1>{html.escape(collection["title"])}</h1>'
        f"<div>{_chips(collection['attributes'])}</div><p>{items.height} products</p>"
        f'<div class="grid">{"".join(cards)}</div>'
    )
    return _page(collection["title"], body)


def _index_html(collections: pl.DataFrame, pages: pl.DataFrame) -> str:
    sizes = dict(pages.group_by("slug").len().iter_rows()) if not pages.is_empty() else {}
    items = "".join(
        f'<li><a href="pages/{html.escape(r["slug"])}.html">{html.escape(r["title"])}</a> ({sizes.get(r["slug"], 0)})</li>'
        for r in collections.iter_rows(named=True)
    )
    return _page("PinLanding collections", f"<h1>{collections.height} collections</h1><ul class=\"pages\">{items}</ul>")


def _sitemap(collections: pl.DataFrame, config: SiteConfig) -> str:
    urls = "".join(
        f"<url><loc>{xml_escape(config.base_url)}/pages/{xml_escape(slug)}.html</loc></url>"
        for slug in collections.get_column("slug").to_list()
    )
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'
