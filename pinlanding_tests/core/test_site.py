"""The static site: structure, escaping of hostile catalog/model text, redirects, feeds."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import polars as pl

from pinlanding_assets.core.catalog import load_catalog, locate_catalog
from pinlanding_assets.core.site import SiteConfig, render_site

HOSTILE_TITLE = '</title><script>alert("x")</script> "Quoted" & \'single\' <img src=x onerror=alert(1)>'
ATTR_TYPE = pl.List(pl.Struct({"key": pl.String, "value": pl.String}))


class Collect(HTMLParser):
    """Every tag, attribute and text node, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(path: Path) -> Collect:
    parser = Collect()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def sample_products(sample_catalog: Path, n: int = 12) -> pl.DataFrame:
    return load_catalog(locate_catalog(sample_catalog)).products.head(n)


def site_inputs(products: pl.DataFrame, title: str = "Black Watches") -> tuple[pl.DataFrame, pl.DataFrame]:
    collections = pl.DataFrame(
        {
            "slug": ["black-watch-abc123", "white-shirt-def456", "not-on-a-page-000000"],
            "title": [title, "White Shirts", "Nothing"],
            "attributes": [
                [{"key": "product_type", "value": "watch"}, {"key": "color", "value": '<b>"black"</b>'}],
                [{"key": "product_type", "value": "shirt"}, {"key": "color", "value": "white"}],
                [{"key": "product_type", "value": "shirt"}],
            ],
        },
        schema={"slug": pl.String, "title": pl.String, "attributes": ATTR_TYPE},
    )
    ids = products.get_column("product_id").to_list()
    pages = pl.DataFrame(
        {
            "slug": ["black-watch-abc123"] * 6 + ["white-shirt-def456"] * 4,
            "product_id": ids[:6] + ids[6:10],
            "relevance": [0.9 - 0.01 * i for i in range(10)],
            "rank": list(range(1, 7)) + list(range(1, 5)),
        }
    )
    return collections, pages


def test_site_structure_images_sitemap_and_feed(sample_catalog, tmp_path) -> None:
    products = sample_products(sample_catalog)
    collections, pages = site_inputs(products)
    result = render_site(tmp_path / "site", collections, pages, products, SiteConfig(base_url="https://shop.test/c"))
    site = tmp_path / "site"
    assert result.index == site / "index.html" and result.pages == 2 and result.missing_images == 0
    assert sorted(p.name for p in (site / "pages").iterdir()) == ["black-watch-abc123.html", "white-shirt-def456.html"]
    page = parse(site / "pages" / "black-watch-abc123.html")
    images = [attrs["src"] for tag, attrs in page.tags if tag == "img"]
    assert len(images) == 6 and all((site / "pages" / src).is_file() for src in images)  # real image files
    index = parse(site / "index.html")
    links = [attrs["href"] for tag, attrs in index.tags if tag == "a" and attrs.get("href", "").startswith("pages/")]
    assert sorted(links) == ["pages/black-watch-abc123.html", "pages/white-shirt-def456.html"]
    locs = [el.text for el in ET.parse(site / "sitemap.xml").getroot().iter("{http://www.sitemaps.org/schemas/sitemap/0.9}loc")]
    assert sorted(locs) == ["https://shop.test/c/pages/black-watch-abc123.html", "https://shop.test/c/pages/white-shirt-def456.html"]
    feed = json.loads((site / "feed.json").read_text())
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    item = next(i for i in feed["items"] if i["id"] == "black-watch-abc123")
    assert [p["product_id"] for p in item["_pinlanding"]["products"]] == pages.get_column("product_id").head(6).to_list()
    assert not (tmp_path / "site.building").exists()


def test_hostile_titles_and_values_are_escaped_everywhere(sample_catalog, tmp_path) -> None:
    products = sample_products(sample_catalog).with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit('Evil <script>steal()</script> "Shoe"')).otherwise(pl.col("title")).alias("title")
    )
    collections, pages = site_inputs(products, HOSTILE_TITLE)
    render_site(tmp_path / "site", collections, pages, products, SiteConfig())
    for path in [tmp_path / "site" / "index.html", tmp_path / "site" / "pages" / "black-watch-abc123.html"]:
        raw = path.read_text()
        parsed = parse(path)
        assert "<script>alert" not in raw and "<script>steal" not in raw and "<img src=x" not in raw
        assert [t for t, _ in parsed.tags].count("script") == (1 if path.name == "index.html" else 0)  # only our filter
        assert not any(k.startswith("on") for _, attrs in parsed.tags for k in attrs)  # no injected handlers
        assert any(HOSTILE_TITLE in t for t in parsed.text)  # shown as text, intact
    page = parse(tmp_path / "site" / "pages" / "black-watch-abc123.html")
    assert any('<b>"black"</b>' in t for t in page.text)  # an attribute value, as text
    alts = [attrs["alt"] for tag, attrs in page.tags if tag == "img"]
    assert 'Evil <script>steal()</script> "Shoe"' in alts  # quotes could not break out of alt=""
    feed = json.loads((tmp_path / "site" / "feed.json").read_text())
    assert HOSTILE_TITLE in [i["title"] for i in feed["items"]]
    ET.parse(tmp_path / "site" / "sitemap.xml")  # still well-formed XML


def test_unsafe_slugs_never_become_paths_and_missing_images_do_not_break_pages(sample_catalog, tmp_path) -> None:
    products = sample_products(sample_catalog).with_columns(pl.lit("/nonexistent/x.jpg").alias("image_path"))
    collections, pages = site_inputs(products)
    collections = collections.with_columns(pl.when(pl.col("slug") == "white-shirt-def456").then(pl.lit("../../escape")).otherwise(pl.col("slug")).alias("slug"))
    pages = pages.with_columns(pl.when(pl.col("slug") == "white-shirt-def456").then(pl.lit("../../escape")).otherwise(pl.col("slug")).alias("slug"))
    result = render_site(tmp_path / "site", collections, pages, products, SiteConfig())
    assert result.skipped_unsafe_slugs == 1 and result.pages == 1
    assert not (tmp_path / "escape.html").exists()
    assert result.missing_images > 0
    assert "no image" in (tmp_path / "site" / "pages" / "black-watch-abc123.html").read_text()


def test_retired_slugs_get_redirect_pages(sample_catalog, tmp_path) -> None:
    products = sample_products(sample_catalog)
    collections, pages = site_inputs(products)
    retired = pl.DataFrame(
        {"slug": ["black-casual-watch-111111", "gone-222222", "white-shirt-def456"], "title": ["Black <Casual> Watches", "Gone", "White Shirts"], "redirect_to": ["black-watch-abc123", None, None]}
    )
    result = render_site(tmp_path / "site", collections, pages, products, SiteConfig(), retired)
    assert result.redirects == 2  # a slug that is live again is a page, not a redirect
    moved = parse(tmp_path / "site" / "pages" / "black-casual-watch-111111.html")
    refresh = [a["content"] for t, a in moved.tags if t == "meta" and a.get("http-equiv") == "refresh"]
    assert refresh == ["0; url=black-watch-abc123.html"]
    gone = parse(tmp_path / "site" / "pages" / "gone-222222.html")
    assert [a["content"] for t, a in gone.tags if t == "meta" and a.get("http-equiv") == "refresh"] == ["0; url=../index.html"]
    sitemap = (tmp_path / "site" / "sitemap.xml").read_text()
    assert "gone-222222" not in sitemap and "black-casual-watch-111111" not in sitemap
