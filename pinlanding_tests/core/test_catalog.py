from pathlib import Path

import polars as pl
import pytest
from PIL import Image

from pinlanding_assets.core.catalog import CatalogError, list_shards, load_catalog, locate_catalog, slugify


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
