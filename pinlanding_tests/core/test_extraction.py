"""Offline extractor and the VLM extractor (against the loopback Chat Completions server)."""

import base64
import json
from pathlib import Path

import polars as pl
import pytest
from PIL import Image

from pinlanding_assets.core.catalog import load_catalog, locate_catalog
from pinlanding_assets.core.extraction import ATTRIBUTE_SCHEMA, OfflineExtractor, dominant_color, title_attributes
from pinlanding_assets.core.llm_client import CachedLLMClient, LLMSettings
from pinlanding_assets.core.vlm_extraction import PROMPT_VERSION, RESPONSE_SCHEMA, VLMExtractor
from pinlanding_assets.core.warehouse import Warehouse
from pinlanding_tests.fake_openai_server import Fault, fake_openai, first_user_text, last_user_text  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def sample_products(sample_catalog: Path) -> pl.DataFrame:
    return load_catalog(locate_catalog(sample_catalog)).products.head(12)


def vlm_answer(body: dict) -> dict:
    """A plausible VLM: reads the catalog colour line, names a product type from the title."""
    text = first_user_text(body)
    color = next((line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("Catalog color")), "black")
    return {"attributes": [{"key": "Color", "value": color.title()}, {"key": "product_type", "value": text.splitlines()[0].split()[-1].lower()}, {"key": "pattern", "value": "solid"}]}


def settings_for(server, **overrides) -> LLMSettings:
    base = dict(model="fake-vlm", base_url=server.base_url, api_key="k", timeout_s=0.5, max_retries=3, max_concurrency=3, backoff_base_s=0.01, max_backoff_s=2.0)
    return LLMSettings(**(base | overrides))


# -- offline -------------------------------------------------------------------------------


def test_title_lexicon_finds_longest_phrases_per_key():
    found = dict(title_attributes("Roadster Men Navy Blue Slim Fit Striped Round Neck Full Sleeves Cotton T-Shirt"))
    assert found["color"] == "navy blue"
    assert found["fit"] == "slim fit" and found["pattern"] == "striped" and found["neckline"] == "round neck"
    assert found["sleeve"] == "full sleeves" and found["material"] == "cotton" and found["gender"] == "men"
    assert ("color", "blue") not in title_attributes("Navy Blue Shirt")


def test_dominant_color_ignores_the_background(tmp_path: Path):
    red_on_white = Image.new("RGB", (60, 80), (255, 255, 255))
    red_on_white.paste((200, 30, 35), (15, 20, 45, 70))
    red_on_white.save(tmp_path / "a.jpg")
    assert dominant_color(str(tmp_path / "a.jpg")) == "red"
    blue_on_grey = Image.new("RGB", (60, 80), (128, 128, 128))  # not a white background
    blue_on_grey.paste((45, 95, 200), (10, 10, 50, 70))
    blue_on_grey.save(tmp_path / "b.jpg")
    assert dominant_color(str(tmp_path / "b.jpg")) == "blue"


def test_offline_extractor_same_schema_and_every_product_accounted_for(sample_products):
    result = OfflineExtractor().extract(sample_products)
    assert result.attributes.schema == pl.Schema(ATTRIBUTE_SCHEMA)
    labeled = set(result.attributes.get_column("product_id")) | set(result.quarantine.get_column("product_id"))
    assert labeled == set(sample_products.get_column("product_id"))
    assert set(result.attributes.get_column("prompt_version")) == {"offline-v2"}
    assert result.stats["calls_made"] == 0


def test_offline_extractor_quarantines_a_broken_image_and_goes_on(sample_products, tmp_path: Path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    products = sample_products.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(str(broken))).otherwise(pl.col("image_path")).alias("image_path"),
        pl.when(pl.int_range(pl.len()) == 0).then(None).otherwise(pl.col("label_color")).alias("label_color"),
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("Plain Item")).otherwise(pl.col("title")).alias("title"),
    )  # no colour in the catalog or the title: the pixels are needed, and unreadable
    result = OfflineExtractor().extract(products)
    assert result.quarantine.get_column("product_id").to_list() == [products.item(0, "product_id")]
    assert result.quarantine.item(0, "reason") == "extraction failed"
    assert result.attributes.get_column("product_id").n_unique() == products.height - 1


# -- VLM -----------------------------------------------------------------------------------


def test_vlm_requests_carry_image_text_and_schema(fake_openai, sample_products, tmp_path: Path):
    fake_openai.responder = vlm_answer
    extractor = VLMExtractor(CachedLLMClient(settings_for(fake_openai), Warehouse(tmp_path / "w.duckdb")))
    result = extractor.extract(sample_products)

    assert fake_openai.request_count() == sample_products.height
    body = fake_openai.requests[0].body
    assert body["response_format"]["json_schema"]["schema"] == RESPONSE_SCHEMA
    user = body["messages"][-1]["content"]
    image = next(part for part in user if part["type"] == "image_url")["image_url"]["url"]
    assert image.startswith("data:image/jpeg;base64,")
    Image.open(__import__("io").BytesIO(base64.b64decode(image.split(",", 1)[1]))).verify()  # a real image
    titles = {last_user_text(r.body).splitlines()[0] for r in fake_openai.requests}
    assert titles == {f"Title: {t}" for t in sample_products.get_column("title")}

    attrs = result.attributes
    assert attrs.get_column("product_id").n_unique() == sample_products.height
    assert set(attrs.get_column("prompt_version")) == {PROMPT_VERSION}
    assert set(attrs.get_column("key")) == {"color", "product_type", "pattern"}  # keys normalized
    assert attrs.filter(pl.col("key") == "color").get_column("value").str.to_lowercase().to_list() == attrs.filter(pl.col("key") == "color").get_column("value").to_list()
    assert result.stats["calls_made"] == sample_products.height and result.stats["prompt_tokens"] > 0


def test_cache_key_changes_with_image_text_prompt_and_model(fake_openai, sample_products, tmp_path: Path):
    fake_openai.responder = vlm_answer
    warehouse = Warehouse(tmp_path / "w.duckdb")
    products = sample_products.head(3)
    VLMExtractor(CachedLLMClient(settings_for(fake_openai), warehouse)).extract(products)
    assert fake_openai.request_count() == 3
    # same products: no call
    again = VLMExtractor(CachedLLMClient(settings_for(fake_openai), warehouse)).extract(products)
    assert again.stats["calls_made"] == 0 and again.stats["cache_hits"] == 3
    # an edited title and a new image hash: only those products are asked again
    changed = products.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.col("title") + " (new)").otherwise(pl.col("title")).alias("title"),
        pl.when(pl.int_range(pl.len()) == 1).then(pl.lit("0" * 40)).otherwise(pl.col("image_hash")).alias("image_hash"),
    )
    assert VLMExtractor(CachedLLMClient(settings_for(fake_openai), warehouse)).extract(changed).stats["calls_made"] == 2
    # another model: everything again
    assert VLMExtractor(CachedLLMClient(settings_for(fake_openai, model="other"), warehouse)).extract(products).stats["calls_made"] == 3


def test_vlm_faults_end_in_attributes_or_quarantine_never_lost(fake_openai, sample_products, tmp_path: Path):
    fake_openai.responder = vlm_answer
    titles = sample_products.get_column("title").to_list()
    fake_openai.inject(Fault.rate_limit(retry_after_s=0.2), match=titles[0])
    fake_openai.inject(Fault.server_error(), match=titles[1])
    fake_openai.inject(Fault.hang(2.0), match=titles[2])
    fake_openai.inject(Fault.malformed(), match=titles[3])
    fake_openai.inject(Fault.truncated(), Fault.truncated(), match=titles[4])  # repair fails too
    client = CachedLLMClient(settings_for(fake_openai), Warehouse(tmp_path / "w.duckdb"))
    result = VLMExtractor(client).extract(sample_products)

    labeled = set(result.attributes.get_column("product_id"))
    quarantined = dict(result.quarantine.select("product_id", "reason").iter_rows())
    assert labeled | set(quarantined) == set(sample_products.get_column("product_id"))
    assert not labeled & set(quarantined)
    assert list(quarantined.values()) == ["vlm output invalid after repair"]
    assert result.stats["retries"] == 3 and result.stats["repairs"] == 2


def test_vlm_answer_without_usable_attributes_is_quarantined(fake_openai, sample_products, tmp_path: Path):
    fake_openai.responder = lambda body: {"attributes": [{"key": "", "value": "x"}, {"key": "color", "value": "a very long sentence about the colour of it"}]}
    result = VLMExtractor(CachedLLMClient(settings_for(fake_openai), Warehouse(tmp_path / "w.duckdb"))).extract(sample_products.head(2))
    assert result.attributes.is_empty()
    assert result.quarantine.get_column("reason").to_list() == ["vlm returned no usable attribute"] * 2
    assert json.loads(result.quarantine.item(0, "detail"))["attributes"][0]["value"] == "x"
    assert result.stats["invalid_pairs_dropped"] == 4
