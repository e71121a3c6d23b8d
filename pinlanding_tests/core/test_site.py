"""The static site: structure, escaping of hostile catalog/model text, redirects, feeds;
only verified catalog images are published; versions switch atomically."""

from __future__ import annotations

import json
import os
import shutil
import threading
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from pinlanding_assets.core.catalog import CatalogError, load_catalog, locate_catalog
from pinlanding_assets.core.matching import MatchingConfig, withhold_products
from pinlanding_assets.core.site import SiteBuild, SiteConfig, SiteResult, StagedImages

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


class JsonLd(HTMLParser):
    """The text of every <script type="application/ld+json">, as a browser hands it to a
    JSON parser (no entity decoding inside a script)."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = False
        self.blocks: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.inside = tag == "script" and dict(attrs).get("type") == "application/ld+json"
        if self.inside:
            self.blocks.append("")

    def handle_endtag(self, tag):
        self.inside = False

    def handle_data(self, data):
        if self.inside:
            self.blocks[-1] += data


def json_ld(path: Path) -> list[dict]:
    parser = JsonLd()
    parser.feed(path.read_text(encoding="utf-8"))
    return [json.loads(block) for block in parser.blocks]


def parse(path: Path) -> Collect:
    parser = Collect()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def sample_products(sample_catalog: Path, n: int = 12) -> pl.DataFrame:
    return load_catalog(locate_catalog(sample_catalog)).products.head(n)


def publish_site(
    site_dir: Path,
    collections: pl.DataFrame,
    pages: pl.DataFrame,
    products: pl.DataFrame,
    config: SiteConfig,
    retired: pl.DataFrame | None = None,
    catalog_root: Path | None = None,
    min_page_size: int = 1,
    noindex: set[str] = frozenset(),
    concepts: dict | None = None,
) -> tuple[SiteResult, StagedImages]:
    """A publish as `landing_pages` does it: verify images, withhold refused products,
    render, switch. The catalog defaults to the sample catalog the products come from."""
    from pinlanding_assets.core.settings import SAMPLE_CATALOG

    with SiteBuild(site_dir, "test", config) as build:
        images = build.stage_images(pages.select("product_id").unique().join(products, on="product_id", how="left"), catalog_root or SAMPLE_CATALOG)
        pages = withhold_products(pages, images.refused_ids, MatchingConfig(min_page_size=min_page_size))
        result = build.render(collections, pages, products, retired, images, noindex=noindex, concepts=concepts)
    return result, images


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
    result, images = publish_site(tmp_path / "site", collections, pages, products, SiteConfig(base_url="https://shop.test/c"))
    site = tmp_path / "site"
    assert result.index == site / "index.html" and result.pages == 2 and images.refused.is_empty() and result.images == 10
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
    assert site.is_symlink() and site.resolve() == result.build and result.build.parent == tmp_path / "site-builds"


def test_hostile_titles_and_values_are_escaped_everywhere(sample_catalog, tmp_path) -> None:
    products = sample_products(sample_catalog).with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit('Evil <script>steal()</script> "Shoe"')).otherwise(pl.col("title")).alias("title")
    )
    collections, pages = site_inputs(products, HOSTILE_TITLE)
    publish_site(tmp_path / "site", collections, pages, products, SiteConfig())
    for path in [tmp_path / "site" / "index.html", tmp_path / "site" / "pages" / "black-watch-abc123.html"]:
        raw = path.read_text()
        parsed = parse(path)
        assert "<script>alert" not in raw and "<script>steal" not in raw and "<img src=x" not in raw
        scripts = [attrs for t, attrs in parsed.tags if t == "script"]
        if path.name == "index.html":
            assert scripts == [{}]  # only our filter
        else:  # only the structured data, which still parses with the hostile text intact
            assert scripts == [{"type": "application/ld+json"}]
            [data] = json_ld(path)
            assert data["name"] == HOSTILE_TITLE and "Evil <script>steal()</script> \"Shoe\"" in [i["item"]["name"] for i in data["mainEntity"]["itemListElement"]]
        assert not any(k.startswith("on") for _, attrs in parsed.tags for k in attrs)  # no injected handlers
        assert any(HOSTILE_TITLE in t for t in parsed.text)  # shown as text, intact
    page = parse(tmp_path / "site" / "pages" / "black-watch-abc123.html")
    assert any('<b>"black"</b>' in t for t in page.text)  # an attribute value, as text
    alts = [attrs["alt"] for tag, attrs in page.tags if tag == "img"]
    assert 'Evil <script>steal()</script> "Shoe"' in alts  # quotes could not break out of alt=""
    feed = json.loads((tmp_path / "site" / "feed.json").read_text())
    assert HOSTILE_TITLE in [i["title"] for i in feed["items"]]
    ET.parse(tmp_path / "site" / "sitemap.xml")  # still well-formed XML


class Placed(HTMLParser):
    """Each text node with the element around it, and each tag's attributes, decoded as a
    browser would: (tag, class, text) and (tag, attrs)."""

    VOID = {"meta", "link", "img", "br", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.open: list[tuple[str, str]] = []
        self.texts: list[tuple[str, str, str]] = []
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.open.append((tag, dict(attrs).get("class") or ""))

    def handle_endtag(self, tag):
        if self.open and self.open[-1][0] == tag:
            self.open.pop()

    def handle_data(self, data):
        if self.open:
            self.texts.append((*self.open[-1], data))


def placed(path: Path) -> Placed:
    parser = Placed()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_a_hostile_product_title_is_escaped_in_every_place_it_appears(sample_catalog, tmp_path) -> None:
    evil = '<script>alert("t")</script> "Quoted" \'single\' & </title><b onclick=x>'
    products = sample_products(sample_catalog).with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(evil)).otherwise(pl.col("title")).alias("title"))
    collections, pages = site_inputs(products, title=evil)
    retired = pl.DataFrame({"slug": ["gone-222222"], "title": [evil], "redirect_to": ["black-watch-abc123"]})
    base_url = 'https://shop.test/c?q=<x>&a="1"'
    publish_site(tmp_path / "site", collections, pages, products, SiteConfig(base_url=base_url, site_title=evil), retired)
    site = tmp_path / "site"
    page, index, moved = (placed(site / "pages" / "black-watch-abc123.html"), placed(site / "index.html"), placed(site / "pages" / "gone-222222.html"))

    def texts(parsed: Placed, tag: str, css_class: str = "") -> list[str]:
        return [text for t, c, text in parsed.texts if t == tag and c == css_class]

    def alts(parsed: Placed) -> list[str]:
        return [attrs["alt"] for tag, attrs in parsed.tags if tag == "img"]

    for parsed in (page, index, moved):
        assert texts(parsed, "title")[0].startswith(evil)  # <title>: the collection's, the retired one's, the site's
        assert texts(parsed, "a", "brand") == [evil]  # the site title in the header
        assert not any(k.startswith("on") for _, attrs in parsed.tags for k in attrs)  # no handler got in
        assert [t for t, attrs in parsed.tags if t == "script" and attrs.get("type") != "application/ld+json"] == (["script"] if parsed is index else [])
    [data] = json_ld(site / "pages" / "black-watch-abc123.html")  # the structured data parses, the title intact
    assert data["name"] == evil and evil in [i["item"]["name"] for i in data["mainEntity"]["itemListElement"]]
    og = {attrs["property"]: attrs["content"] for tag, attrs in page.tags if tag == "meta" and "property" in attrs}
    assert og["og:title"] == evil and og["og:url"] == f"{base_url}/pages/black-watch-abc123.html"  # attribute values, read back intact
    assert texts(page, "h1") == [evil] and evil in alts(page) and evil in texts(page, "div", "body")  # the product: alt and card
    assert evil in alts(index) and texts(index, "span", "t")[-1] == evil  # the tile: first product's image, the collection's title
    assert texts(moved, "p", "meta")[0] == f"{evil} is no longer published. "  # the redirect's meta line
    canonical = [attrs["href"] for tag, attrs in page.tags if tag == "link" and attrs.get("rel") == "canonical"]
    assert canonical == [f"{base_url}/pages/black-watch-abc123.html"]
    for path in (site / "index.html", site / "pages" / "black-watch-abc123.html", site / "pages" / "gone-222222.html"):
        raw = path.read_text()
        assert "<script>alert" not in raw and '"Quoted"' not in raw and "'single'" not in raw and "<b onclick" not in raw
    locs = [el.text for el in ET.parse(site / "sitemap.xml").getroot().iter("{http://www.sitemaps.org/schemas/sitemap/0.9}loc")]
    assert sorted(locs) == [f"{base_url}/pages/black-watch-abc123.html", f"{base_url}/pages/white-shirt-def456.html"]  # escaped, read back intact
    assert "<x>" not in (site / "sitemap.xml").read_text()


def test_unsafe_slugs_never_become_paths(sample_catalog, tmp_path) -> None:
    products = sample_products(sample_catalog)
    collections, pages = site_inputs(products)
    collections = collections.with_columns(pl.when(pl.col("slug") == "white-shirt-def456").then(pl.lit("../../escape")).otherwise(pl.col("slug")).alias("slug"))
    pages = pages.with_columns(pl.when(pl.col("slug") == "white-shirt-def456").then(pl.lit("../../escape")).otherwise(pl.col("slug")).alias("slug"))
    result, _ = publish_site(tmp_path / "site", collections, pages, products, SiteConfig())
    assert result.skipped_unsafe_slugs == 1 and result.pages == 1
    assert not (tmp_path / "escape.html").exists() and not (tmp_path / "site-builds" / "escape.html").exists()


def test_retired_slugs_get_redirect_pages(sample_catalog, tmp_path) -> None:
    products = sample_products(sample_catalog)
    collections, pages = site_inputs(products)
    retired = pl.DataFrame(
        {"slug": ["black-casual-watch-111111", "gone-222222", "white-shirt-def456"], "title": ["Black <Casual> Watches", "Gone", "White Shirts"], "redirect_to": ["black-watch-abc123", None, None]}
    )
    result, _ = publish_site(tmp_path / "site", collections, pages, products, SiteConfig(), retired)
    assert result.redirects == 2  # a slug that is live again is a page, not a redirect
    moved = parse(tmp_path / "site" / "pages" / "black-casual-watch-111111.html")
    refresh = [a["content"] for t, a in moved.tags if t == "meta" and a.get("http-equiv") == "refresh"]
    assert refresh == ["0; url=black-watch-abc123.html"]
    gone = parse(tmp_path / "site" / "pages" / "gone-222222.html")
    assert [a["content"] for t, a in gone.tags if t == "meta" and a.get("http-equiv") == "refresh"] == ["0; url=../index.html"]
    sitemap = (tmp_path / "site" / "sitemap.xml").read_text()
    assert "gone-222222" not in sitemap and "black-casual-watch-111111" not in sitemap


# -- nothing outside the catalog is published (issue 12, item 6) ----------------------

SECRET = b"OPENAI_API_KEY=sk-live-do-not-publish-0123456789"


@pytest.fixture
def catalog_copy(sample_catalog, tmp_path) -> tuple[Path, pl.DataFrame]:
    """A copy of the sample catalog and its first 12 validated products."""
    root = tmp_path / "catalog"
    shutil.copytree(sample_catalog, root)
    return root, sample_products(root)


def test_images_that_changed_after_ingest_are_refused_and_their_products_withheld(catalog_copy, tmp_path) -> None:
    root, products = catalog_copy
    ids = products.get_column("product_id").to_list()
    path = dict(zip(ids, products.get_column("image_path").to_list()))
    (tmp_path / "secret.env").write_bytes(SECRET)
    attacks = {
        ids[0]: "image is a symlink",  # a validated image replaced by a link to a file holding a key
        ids[1]: "image is a symlink",  # ... by a link to /dev/zero (an endless file)
        ids[2]: "image changed since ingest",  # rewritten in place with other bytes
        ids[6]: "image outside catalog",  # a stored path outside the catalog root (the real bytes, right hash)
        ids[7]: "image too large",  # grew past the cap (sparse: costs no disk)
        ids[8]: "image not a regular file",  # a FIFO: opening it must not hang the publish
    }
    Path(path[ids[0]]).unlink()
    Path(path[ids[0]]).symlink_to(tmp_path / "secret.env")
    Path(path[ids[1]]).unlink()
    Path(path[ids[1]]).symlink_to("/dev/zero")
    Path(path[ids[2]]).write_bytes(Path(path[ids[3]]).read_bytes())
    outside = tmp_path / "outside.jpg"
    shutil.copyfile(path[ids[6]], outside)
    Path(path[ids[7]]).unlink()
    with open(path[ids[7]], "wb") as handle:
        handle.truncate(SiteConfig().max_image_bytes + 1)
    Path(path[ids[8]]).unlink()
    os.mkfifo(path[ids[8]])
    products = products.with_columns(pl.when(pl.col("product_id") == ids[6]).then(pl.lit(str(outside))).otherwise(pl.col("image_path")).alias("image_path"))
    collections, pages = site_inputs(products)

    result, images = publish_site(tmp_path / "site", collections, pages, products, SiteConfig(), catalog_root=root)

    refused = images.refused
    assert dict(zip(refused.get_column("product_id"), refused.get_column("reason"))) == attacks
    assert set(refused.get_column("stage")) == {"publish"} and refused.get_column("shard").null_count() == 0
    assert all(refused.get_column("detail").str.len_chars() > 0)
    site = tmp_path / "site"
    published = [p.read_bytes() for p in (site / "images").iterdir()]
    assert len(published) == result.images == 4 and all(SECRET not in data and len(data) < 100_000 for data in published)
    feed = json.loads((site / "feed.json").read_text())
    on_pages = {item["id"]: [p["product_id"] for p in item["_pinlanding"]["products"]] for item in feed["items"]}
    assert on_pages == {"black-watch-abc123": ids[3:6], "white-shirt-def456": [ids[9]]}  # the others stay, ranked up
    ranks = {item["id"]: [p["rank"] for p in item["_pinlanding"]["products"]] for item in feed["items"]}
    assert ranks == {"black-watch-abc123": [1, 2, 3], "white-shirt-def456": [1]}


def test_a_link_anywhere_on_the_path_is_refused(catalog_copy, tmp_path) -> None:
    root, products = catalog_copy
    real = tmp_path / "elsewhere"
    (root / "images").rename(real)
    (root / "images").symlink_to(real)  # same bytes, same hashes: only the link is wrong
    collections, pages = site_inputs(products)
    with SiteBuild(tmp_path / "site", "test", SiteConfig()) as build:
        images = build.stage_images(products, root)
        assert set(images.refused.get_column("reason")) == {"image is a symlink"} and images.refused.height == products.height
        assert not images.files
        build.render(collections, withhold_products(pages, images.refused_ids, MatchingConfig(min_page_size=1)), products, None, images)
    assert not any((tmp_path / "site" / "images").iterdir())


def test_withheld_products_leave_pages_that_fall_below_the_minimum_size() -> None:
    pages = pl.DataFrame({"slug": ["a"] * 4 + ["b"] * 3, "product_id": ["p1", "p2", "p3", "p4", "p1", "p5", "p6"], "relevance": [0.9] * 7, "rank": [1, 2, 3, 4, 1, 2, 3]})
    kept = withhold_products(pages, {"p1", "p5"}, MatchingConfig(min_page_size=3))
    assert kept.rows() == [("a", "p2", 0.9, 1), ("a", "p3", 0.9, 2), ("a", "p4", 0.9, 3)]  # "b" kept one product: dropped
    assert withhold_products(pages, set(), MatchingConfig(min_page_size=3)).equals(pages)


def test_render_refuses_products_whose_images_were_not_verified(sample_catalog, tmp_path) -> None:
    products = sample_products(sample_catalog)
    collections, pages = site_inputs(products)
    with pytest.raises(ValueError, match="no verified image"):
        with SiteBuild(tmp_path / "site", "test", SiteConfig()) as build:
            build.render(collections, pages, products, None, StagedImages({}, pl.DataFrame(schema={"product_id": pl.String})))
    assert not (tmp_path / "site").exists() and not any((tmp_path / "site-builds").iterdir())  # nothing switched in, the build removed


def test_an_unreadable_catalog_stops_the_publish_instead_of_emptying_the_site(sample_catalog, tmp_path) -> None:
    products = sample_products(sample_catalog)
    with pytest.raises(CatalogError, match="cannot open the catalog"):
        with SiteBuild(tmp_path / "site", "test", SiteConfig()) as build:
            build.stage_images(products, tmp_path / "unmounted")


# -- the site switch is atomic (issue 12, item 7) --------------------------------------


def test_readers_always_see_a_whole_site_while_versions_switch(sample_catalog, tmp_path) -> None:
    products = sample_products(sample_catalog)
    collections, pages = site_inputs(products)
    site = tmp_path / "site"
    (site / "pages").mkdir(parents=True)  # a site from before versioned builds: a real directory
    (site / "index.html").write_text("old")
    publish_site(site, collections, pages, products, SiteConfig())
    assert site.is_symlink() and (site / "index.html").read_text() != "old"
    assert [p.read_text() for p in (tmp_path / "site-builds").glob("0-legacy-*/index.html")] == ["old"]  # kept, then pruned in turn

    failures: list[str] = []
    stop = threading.Event()

    def read() -> None:  # a browser or a crawler, many times per publish
        while not stop.is_set():
            try:
                index = (site / "index.html").read_text()
                feed = json.loads((site / "feed.json").read_text())
                if "</html>" not in index or len(feed["items"]) != 2:
                    failures.append("half-written site")
            except (OSError, ValueError) as exc:
                failures.append(f"{type(exc).__name__}: {exc}")

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(12):
            publish_site(site, collections, pages, products, SiteConfig(keep_builds=3))
    finally:
        stop.set()
        reader.join()
    assert not failures, failures[:3]
    builds = sorted(p.name for p in (tmp_path / "site-builds").iterdir())
    assert len(builds) == 3 and site.resolve().name == builds[-1]  # the newest three, the live one last
    assert not list(tmp_path.glob(".site.*"))  # no temporary link left behind


def test_collection_pages_carry_structured_data_meta_and_open_graph(sample_catalog, tmp_path) -> None:
    products = sample_products(sample_catalog)
    collections, pages = site_inputs(products)
    base = "https://shop.test/c"
    publish_site(tmp_path / "site", collections, pages, products, SiteConfig(base_url=base), noindex={"white-shirt-def456"})
    site = tmp_path / "site"
    path = site / "pages" / "black-watch-abc123.html"
    [data] = json_ld(path)
    # schema.org: a CollectionPage whose mainEntity is the ItemList of the page's products, in rank order
    assert data["@context"] == "https://schema.org" and data["@type"] == "CollectionPage"
    assert data["name"] == "Black Watches" and data["url"] == f"{base}/pages/black-watch-abc123.html"
    item_list = data["mainEntity"]
    assert item_list["@type"] == "ItemList" and item_list["numberOfItems"] == 6 == len(item_list["itemListElement"])
    ranked = pages.filter(pl.col("slug") == "black-watch-abc123").sort("rank")
    titles = dict(products.select("product_id", "title").iter_rows())
    for element, (pid, rank) in zip(item_list["itemListElement"], ranked.select("product_id", "rank").iter_rows()):
        assert element["@type"] == "ListItem" and element["position"] == rank
        product = element["item"]
        assert product["@type"] == "Product" and product["sku"] == pid and product["name"] == titles[pid]
        assert product["image"].startswith(f"{base}/images/") and (site / "images" / product["image"].rsplit("/", 1)[1]).is_file()
    head = parse(path)
    metas = {attrs.get("name") or attrs.get("property"): attrs.get("content") for tag, attrs in head.tags if tag == "meta"}
    description = metas["description"]
    assert description.startswith("Black Watches: 6 products") and "color <b>\"black\"</b>" in description and len(description) <= 160
    assert data["description"] == description
    assert metas["og:title"] == "Black Watches" and metas["og:description"] == description and metas["og:url"] == data["url"]
    assert metas["og:image"] == item_list["itemListElement"][0]["item"]["image"]  # the first product's picture previews the page
    assert "robots" not in metas  # indexed
    # A thin page: rendered (links to it work) but noindex and not in the sitemap.
    thin = {attrs.get("name"): attrs.get("content") for tag, attrs in parse(site / "pages" / "white-shirt-def456.html").tags if tag == "meta"}
    assert thin["robots"] == "noindex,follow"
    locs = [el.text for el in ET.parse(site / "sitemap.xml").getroot().iter("{http://www.sitemaps.org/schemas/sitemap/0.9}loc")]
    assert locs == [f"{base}/pages/black-watch-abc123.html"]


def test_related_links_are_shown_by_relation(sample_catalog, tmp_path) -> None:
    products = sample_products(sample_catalog, 12)
    ids = products.get_column("product_id").to_list()
    collections = pl.DataFrame(
        {
            "slug": ["shirts", "white-shirts", "black-shirts", "white-shirts-for-men"],
            "title": ["Shirts", "White Shirts", "Black Shirts", "White Shirts for Men"],
            "attributes": [
                [{"key": "product_type", "value": "shirt"}],
                [{"key": "product_type", "value": "shirt"}, {"key": "color", "value": "white"}],
                [{"key": "product_type", "value": "shirt"}, {"key": "color", "value": "black"}],
                [{"key": "product_type", "value": "shirt"}, {"key": "color", "value": "white"}, {"key": "gender", "value": "men"}],
            ],
        },
        schema={"slug": pl.String, "title": pl.String, "attributes": ATTR_TYPE},
    )
    members = {"shirts": ids[:12], "white-shirts": ids[:6], "black-shirts": ids[6:12], "white-shirts-for-men": ids[:3]}
    pages = pl.DataFrame(
        [(s, pid, 0.9, r) for s, m in members.items() for r, pid in enumerate(m, 1)],
        schema={"slug": pl.String, "product_id": pl.String, "relevance": pl.Float64, "rank": pl.Int64}, orient="row",
    )
    publish_site(tmp_path / "site", collections, pages, products, SiteConfig())
    page = placed(tmp_path / "site" / "pages" / "white-shirts.html")
    headings = [text for tag, css, text in page.texts if tag == "span" and css == "relation"]
    assert headings == ["Broader", "Narrower", "In other colours"]
    hrefs = [attrs["href"] for tag, attrs in page.tags if tag == "a" and attrs.get("href", "").endswith(".html") and not attrs["href"].startswith("../")]
    assert hrefs == ["shirts.html", "white-shirts-for-men.html", "black-shirts.html"]


def test_a_concept_page_shows_its_decomposition(sample_catalog, tmp_path) -> None:
    """A style concept's page says why its products are there: each combination with its
    attributes and counts, and on each product card the combination it matched."""
    from pinlanding_assets.core.style_concepts import CONCEPT_PAGE_SCHEMA, CONCEPT_SCHEMA, concept_page_rows, concept_views

    products = sample_products(sample_catalog)
    collections, pages = site_inputs(products)
    ids = products.get_column("product_id").to_list()
    decompositions = pl.DataFrame(
        [
            {"concept_slug": "quiet-luxury", "concept": "quiet luxury", "title": "Quiet Luxury", "source": "file", "hints": ["leather"], "combination": 1,
             "combination_slug": "quiet-luxury--1", "attributes": [{"key": "material", "value": "leather"}, {"key": "product_type", "value": "handbag"}],
             "n_attributes": 2, "support": 20, "score": 1.0, "status": "kept", "reason": "minilm similarity to quiet luxury, leather", "decomposer": "minilm"},
            {"concept_slug": "quiet-luxury", "concept": "quiet luxury", "title": "Quiet Luxury", "source": "file", "hints": ["leather"], "combination": 2,
             "combination_slug": "quiet-luxury--2", "attributes": [{"key": "material", "value": "cashmere"}, {"key": "product_type", "value": "sweater"}],
             "n_attributes": 2, "support": 0, "score": None, "status": "rejected", "reason": "outside the curated vocabulary: material: cashmere", "decomposer": "llm"},
            {"concept_slug": "quiet-luxury", "concept": "quiet luxury", "title": "Quiet Luxury", "source": "file", "hints": ["leather"], "combination": 3,
             "combination_slug": "quiet-luxury--3", "attributes": [{"key": "product_type", "value": "watch"}],
             "n_attributes": 1, "support": 30, "score": 0.3, "status": "kept", "reason": None, "decomposer": "minilm"},
        ],
        schema=CONCEPT_SCHEMA,
    )
    concept = pl.DataFrame(
        {"slug": ["quiet-luxury"] * 3, "product_id": ids[:3], "relevance": [0.9, 0.8, 0.7], "rank": [1, 2, 3], "combination_slug": ["quiet-luxury--3", "quiet-luxury--1", "quiet-luxury--3"]},
        schema=CONCEPT_PAGE_SCHEMA,
    )
    all_pages = pl.concat([pages, concept.drop("combination_slug")], how="vertical_relaxed")
    rows = pl.concat([collections, concept_page_rows(decompositions)])
    publish_site(tmp_path / "site", rows, all_pages, products, SiteConfig(), concepts=concept_views(decompositions, concept))
    html = (tmp_path / "site" / "pages" / "quiet-luxury.html").read_text(encoding="utf-8")
    page = parse(tmp_path / "site" / "pages" / "quiet-luxury.html")
    text = " ".join(" ".join(page.text).split())
    assert "Why these products" in text and "“quiet luxury” is not one attribute" in text
    items = [attrs.get("id") for tag, attrs in page.tags if tag == "li"]
    assert items == ["combination-1", "combination-3"]  # the rejected combination is not shown
    assert "material leather" in text and "product type handbag" in text and "cashmere" not in html
    assert "1 on this page, 20 in the catalog" in text and "2 on this page, 30 in the catalog" in text
    card_links = [attrs["href"] for tag, attrs in page.tags if tag == "a" and attrs.get("href", "").startswith("#combination-")]
    assert card_links == ["#combination-3", "#combination-1", "#combination-3"]  # in rank order
    assert "Style Concepts" in " ".join(parse(tmp_path / "site" / "index.html").text)
    # an ordinary collection page has no such section
    assert "Why these products" not in (tmp_path / "site" / "pages" / "white-shirt-def456.html").read_text(encoding="utf-8")
