import csv
import hashlib
import json
import os
from pathlib import Path

import polars as pl
import pytest
from PIL import EpsImagePlugin, Image

from pinlanding_assets.core.catalog import CatalogError, IngestLimits, TeacherInputs, list_shards, load_catalog, locate_catalog, read_catalog_table, shard_fingerprints, slugify
from pinlanding_assets.core.vlm_extraction import product_text


def make_generic(tmp_path: Path, rows: list[dict], name: str = "products.csv") -> Path:
    (tmp_path / "images").mkdir(exist_ok=True)
    pl.DataFrame(rows).write_csv(tmp_path / name) if name.endswith(".csv") else pl.DataFrame(rows).write_parquet(tmp_path / name)
    return tmp_path


def good_image(path: Path, color=(200, 0, 0)) -> str:
    Image.new("RGB", (30, 40), color).save(path)
    return f"images/{path.name}"


def test_kaggle_layout_reads_labels_and_shards(real_slice):
    table = locate_catalog(real_slice)
    assert table.layout == "kaggle"
    assert list_shards(table) == ["accessories", "apparel", "footwear"]
    loaded = load_catalog(table, shards=["footwear"])
    assert loaded.products.height == 90
    assert set(loaded.products.get_column("shard")) == {"footwear"}
    assert {"product_type", "color", "gender", "occasion", "season"} <= set(loaded.label_keys)
    assert loaded.products.get_column("image_hash").str.len_chars().min() == 40


def test_generic_table_quarantines_bad_rows_with_reasons(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    ok = good_image(images / "ok.jpg")
    (images / "broken.jpg").write_bytes(b"not a jpeg at all")
    (tmp_path.parent / "outside.jpg").write_bytes((images / "ok.jpg").read_bytes())
    rows = [
        {"id": "1", "title": "Red Shirt", "image": ok},
        {"id": "1", "title": "Red Shirt again", "image": ok},
        {"id": "2", "title": "", "image": ok},
        {"id": "3", "title": "Missing", "image": "images/nope.jpg"},
        {"id": "4", "title": "Broken", "image": "images/broken.jpg"},
        {"id": "5", "title": "Escaping", "image": "../outside.jpg"},
        {"id": "6", "title": "Blue Jeans", "image": ok},
    ]
    make_generic(tmp_path, rows)
    loaded = load_catalog(locate_catalog(tmp_path))
    assert loaded.products.get_column("product_id").to_list() == ["1", "6"]
    reasons = dict(loaded.quarantine.select("product_id", "reason").iter_rows())
    assert reasons == {
        "1": "duplicate id",
        "2": "empty title",
        "3": "missing image",
        "4": "undecodable image",
        "5": "image path escapes catalog",
    }
    assert set(loaded.products.get_column("shard")) == {"all"}  # no shard column: one shard


def test_parquet_table_and_shard_column(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rows = [{"id": i, "title": f"Item {i}", "image": good_image(images / f"{i}.png"), "shard": "Home & Garden", "label_color": "Red"} for i in range(3)]
    make_generic(tmp_path, rows, "products.parquet")
    table = locate_catalog(tmp_path / "products.parquet")
    assert list_shards(table) == ["home-garden"]
    loaded = load_catalog(table)
    assert loaded.products.get_column("product_id").to_list() == ["0", "1", "2"]
    assert loaded.products.get_column("label_color").to_list() == ["red"] * 3


def test_missing_catalog_and_missing_columns_are_clear_errors(tmp_path):
    with pytest.raises(CatalogError, match="catalog not found"):
        locate_catalog(tmp_path / "nowhere")
    with pytest.raises(CatalogError, match="neither styles.csv"):
        locate_catalog(tmp_path)
    (tmp_path / "products.csv").write_text("id,name\n1,x\n")
    with pytest.raises(CatalogError, match="lacks required column"):
        load_catalog(locate_catalog(tmp_path))


def test_slugify():
    assert slugify("Personal Care") == "personal-care"
    assert slugify("  ") == "unnamed"


# One bad row costs one row (issue 12, item 4): each hostile image path or file becomes one
# quarantine row with a clear reason, the good row beside it loads, and the refresh sensor's
# fingerprints do not raise on it.

EPS_BYTES = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n%%EndComments\nnewpath 0 0 moveto 10 10 lineto stroke\nshowpage\n%%EOF\n"


def write_products(root: Path, rows: list[dict]) -> Path:
    """products.csv through the csv module: NUL bytes and long fields stay as written."""
    with (root / "products.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


def nul_byte_path(images: Path) -> str:
    good_image(images / "red.jpg")
    return "images/red\x00.jpg"


def symlink_loop(images: Path) -> str:
    os.symlink("loop.jpg", images / "loop.jpg")
    return "images/loop.jpg"


def name_too_long(images: Path) -> str:
    return "images/" + "x" * 300 + ".jpg"


def directory(images: Path) -> str:
    (images / "folder.jpg").mkdir()
    return "images/folder.jpg"


def over_size_cap(images: Path) -> str:
    """A valid JPEG padded past the default 20 MB cap (sparse: costs no disk); it decodes."""
    path = images / "padded.jpg"
    good_image(path)
    with path.open("r+b") as handle:
        handle.truncate(21_000_000)  # the documented default cap is 20 MB
    return "images/padded.jpg"


def eps_file(images: Path) -> str:
    (images / "vector.jpg").write_bytes(EPS_BYTES)
    return "images/vector.jpg"


def fifo(images: Path) -> str:
    os.mkfifo(images / "pipe.jpg")  # opening it to read would wait for a writer forever
    return "images/pipe.jpg"


HOSTILE_IMAGES = {  # how to make the file -> (reason, words in the detail)
    nul_byte_path: ("bad image path", "NUL byte"),
    symlink_loop: ("bad image path", "symlink loop"),
    name_too_long: ("bad image path", "file name too long"),
    directory: ("image not a file", "is a directory"),
    over_size_cap: ("image too large", "max_image_bytes"),
    eps_file: ("image format not accepted", "EPS"),
    fifo: ("image not a file", "FIFO"),
}


def hostile_catalog(root: Path, makers) -> Path:
    """One good product, then one product per hostile image, in two shards."""
    images = root / "images"
    images.mkdir(exist_ok=True)
    rows = [{"id": "good", "title": "Red Shirt", "image": good_image(images / "good.jpg"), "shard": "tops"}]
    rows += [{"id": maker.__name__, "title": "Blue Shirt", "image": maker(images), "shard": ("tops", "shoes")[i % 2]} for i, maker in enumerate(makers)]
    return write_products(root, rows)


@pytest.mark.parametrize("make_image", list(HOSTILE_IMAGES), ids=lambda maker: maker.__name__)
def test_a_hostile_image_costs_its_row_only(tmp_path, make_image):
    loaded = load_catalog(locate_catalog(hostile_catalog(tmp_path, [make_image])))
    assert loaded.products.get_column("product_id").to_list() == ["good"]
    reason, words = HOSTILE_IMAGES[make_image]
    [(pid, got_reason, detail)] = loaded.quarantine.select("product_id", "reason", "detail").iter_rows()
    assert (pid, got_reason) == (make_image.__name__, reason), detail
    assert words in detail and "\x00" not in detail


def test_all_hostile_images_in_one_catalog_cost_one_row_each_and_fingerprints_do_not_raise(tmp_path):
    table = locate_catalog(hostile_catalog(tmp_path, list(HOSTILE_IMAGES)))
    loaded = load_catalog(table)
    assert loaded.products.get_column("product_id").to_list() == ["good"]
    reasons = loaded.quarantine.group_by("product_id").agg(pl.col("reason"))
    assert dict(reasons.iter_rows()) == {maker.__name__: [reason] for maker, (reason, _) in HOSTILE_IMAGES.items()}
    fingerprints = shard_fingerprints(table)  # what the refresh sensor and `make run` call on every catalog
    assert sorted(fingerprints) == ["shoes", "tops"] and all(len(f) == 16 for f in fingerprints.values())


def test_pillow_never_parses_a_format_we_do_not_accept(tmp_path, monkeypatch):
    parsed = []

    def spy_open(self):
        parsed.append(self.fp)
        raise SyntaxError("spy: the EPS parser ran")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", spy_open)
    loaded = load_catalog(locate_catalog(hostile_catalog(tmp_path, [eps_file])))
    assert parsed == []  # EPS hands files to Ghostscript: its parser must not even read the header
    assert loaded.quarantine.get_column("reason").to_list() == ["image format not accepted"]


def test_size_and_pixel_caps_and_formats_are_configurable(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rows = [{"id": "small", "title": "Red Shirt", "image": good_image(images / "small.png")}]
    Image.effect_noise((300, 300), 64).convert("RGB").save(images / "wide.png")  # noise: larger than small.png
    rows.append({"id": "wide", "title": "Blue Shirt", "image": "images/wide.png"})
    write_products(tmp_path, rows)
    table = locate_catalog(tmp_path)
    assert load_catalog(table).quarantine.is_empty()
    size_of_wide = (images / "wide.png").stat().st_size
    by_bytes = load_catalog(table, limits=IngestLimits(max_image_bytes=size_of_wide - 1))
    assert dict(by_bytes.quarantine.select("product_id", "reason").iter_rows()) == {"wide": "image too large"}
    by_pixels = load_catalog(table, limits=IngestLimits(max_image_pixels=300 * 300 - 1))
    assert "300x300 pixels" in by_pixels.quarantine.get_column("detail").item()
    jpeg_only = load_catalog(table, limits=IngestLimits(image_formats=("jpeg",)))
    assert set(jpeg_only.quarantine.get_column("reason")) == {"image format not accepted"}
    assert "PNG file; accepted formats: JPEG (image_formats)" in jpeg_only.quarantine.get_column("detail").to_list()[0]


def test_image_hash_is_the_sha1_of_the_file_bytes(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    path = images / "big.png"
    Image.effect_noise((1200, 1200), 64).save(path)  # more than one hashing chunk
    write_products(tmp_path, [{"id": "1", "title": "Grey Shirt", "image": "images/big.png"}])
    loaded = load_catalog(locate_catalog(tmp_path))
    assert loaded.products.get_column("image_hash").item() == hashlib.sha1(path.read_bytes()).hexdigest()


def test_ingest_limits_refuse_nonsense():
    with pytest.raises(ValueError, match="positive"):
        IngestLimits(max_image_bytes=0)
    with pytest.raises(ValueError, match="unknown \\['JPG'\\]"):
        IngestLimits(image_formats=("JPG",))


# Huge text is cut before any stage reads it (issue 12, item 5).


def test_a_long_title_is_cut_to_the_default_limit_and_the_cut_noted(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    long_title = "Very Long Title " * 400
    write_products(tmp_path, [{"id": "1", "title": long_title, "image": good_image(images / "1.jpg")}])
    product = load_catalog(locate_catalog(tmp_path)).products.row(0, named=True)
    assert len(product["title"]) <= 300 and product["title"].startswith("Very Long Title") and product["title"].endswith("…")
    assert json.loads(product["cut_fields"]) == {"title": len(long_title.strip())}


def test_every_huge_text_field_is_cut_and_later_stages_read_the_cut_text(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    huge = {"title": "Red Shirt " * 100, "description": "soft cotton " * 2000, "category": "Topwear " * 100, "brand": "Acme " * 100, "label_color": "red " * 100}
    rows = [{"id": "huge", "image": good_image(images / "huge.jpg"), **huge}]
    rows.append({"id": "plain", "image": good_image(images / "plain.jpg"), "title": "Blue Shirt", "description": "cotton", "category": "Topwear", "brand": "Acme", "label_color": "blue"})
    write_products(tmp_path, rows)
    limits = IngestLimits(max_title_chars=50, max_description_chars=100, max_field_chars=20)
    loaded = load_catalog(locate_catalog(tmp_path), limits=limits)
    cut, plain = loaded.products.sort("product_id").iter_rows(named=True)
    assert json.loads(cut["cut_fields"]) == {"title": 999, "description": 24000, "category": 800, "metadata.brand": 500, "label_color": 399}
    assert len(cut["title"]) <= 50 and len(cut["description"]) <= 100 and len(cut["category"]) <= 20 and len(cut["label_color"]) <= 20
    assert len(json.loads(cut["metadata"])["brand"]) <= 20
    assert cut["text_hash"] == hashlib.sha1(f"{cut['title']}\n{cut['description']}".encode()).hexdigest()
    assert plain["cut_fields"] is None and plain["title"] == "Blue Shirt"
    assert loaded.cut_products == 1
    assert loaded.cut_counts == {"category": 1, "description": 1, "label_color": 1, "metadata.brand": 1, "title": 1}
    # the VLM prompt is built from the teacher's view of this frame: it holds the cut text only
    view = TeacherInputs(("category", "brand")).view(loaded.products.filter(pl.col("product_id") == "huge"))
    prompt_text, _ = product_text(view.row(0, named=True))
    assert "…" in prompt_text and len(prompt_text) < 50 + 100 + 20 + 20 + 60  # the four fields plus their labels


def test_the_catalog_table_is_read_again_as_soon_as_its_content_changes(tmp_path):
    """Parsed once per content: a same-size edit made at once (same modification time on a
    coarse clock) is still seen."""
    (tmp_path / "images").mkdir()
    table = tmp_path / "products.csv"
    table.write_text("id,title,image\n1,Red Shirt,images/1.jpg\n")
    first = read_catalog_table(locate_catalog(table))
    table.write_text("id,title,image\n1,Tan Shirt,images/1.jpg\n")
    assert read_catalog_table(locate_catalog(table)).get_column("title").to_list() == ["Tan Shirt"]
    assert first.get_column("title").to_list() == ["Red Shirt"]


def test_open_image_reads_the_usual_formats_first_and_any_other_pillow_reads(tmp_path):
    """Readers of validated images (training, scoring, pixel colours) open them through
    `open_image`: a JPEG, a PNG saved under a .jpg name, and a BMP (a format a merchant may
    add to `image_formats`, outside the defaults) all decode to the pixels written."""
    from pinlanding_assets.core.catalog import open_image

    written = {"a.jpg": ("JPEG", (200, 10, 10)), "png-named.jpg": ("PNG", (10, 200, 10)), "c.bmp": ("BMP", (10, 10, 200))}
    for name, (kind, rgb) in written.items():
        Image.new("RGB", (8, 6), rgb).save(tmp_path / name, format=kind)
    for name, (kind, rgb) in written.items():
        with open_image(tmp_path / name) as img:
            assert img.format == kind
            pixel = img.convert("RGB").getpixel((4, 3))
        assert max(abs(a - b) for a, b in zip(pixel, rgb)) <= 8  # JPEG is lossy
