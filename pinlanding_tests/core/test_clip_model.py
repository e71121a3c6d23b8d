"""The open_clip dual encoder: towers, trimmed text encoding, checkpoints, model sources."""

from __future__ import annotations

from pathlib import Path

import open_clip
import polars as pl
import pytest
import torch
from safetensors.torch import save_file

from pinlanding_assets.core.catalog import load_catalog, locate_catalog
from pinlanding_assets.core.clip_model import (
    ModelSourceError,
    RARE_ID,
    ModelSpec,
    build_encoder,
    embed_products,
    encode_text_trimmed,
    load_encoder,
    load_images,
    save_encoder,
)


@pytest.fixture(scope="module")
def products(sample_catalog: Path) -> pl.DataFrame:
    return load_catalog(locate_catalog(sample_catalog)).products.head(24)


def test_trimmed_text_encoding_equals_open_clip_full_context() -> None:
    encoder = build_encoder(ModelSpec(), seed=0)
    encoder.model.eval()
    tokens = encoder.tokenize(["Urban Loom Men Blue Printed Tshirt", "color: navy blue", "a"])
    with torch.no_grad():
        full = encoder.model.encode_text(tokens)
        trimmed = encode_text_trimmed(encoder.model, tokens)
    assert trimmed.shape == full.shape
    torch.testing.assert_close(trimmed, full, atol=1e-5, rtol=1e-4)


def test_same_seed_same_weights_and_product_tower_is_unit_length(products: pl.DataFrame) -> None:
    a, b = build_encoder(ModelSpec(), seed=3), build_encoder(ModelSpec(), seed=3)
    for (name, wa), (_, wb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(wa, wb), name
    emb = embed_products(a, products.get_column("image_path").to_list(), products.get_column("title").to_list(), batch_size=7)
    assert emb.shape == (products.height, 128)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(products.height))


def test_title_dedupe_and_batching_do_not_change_embeddings(products: pl.DataFrame) -> None:
    encoder = build_encoder(ModelSpec(), seed=0)
    encoder.model.eval()
    paths = products.get_column("image_path").to_list()
    titles = products.get_column("title").to_list()
    titles[5] = titles[0]  # a repeated title is encoded once and shared
    batched = embed_products(encoder, paths, titles, batch_size=5)
    with torch.no_grad():
        direct = encoder.encode_products(load_images(paths, encoder.image_size), encoder.tokenize(titles))
    torch.testing.assert_close(batched, direct, atol=2e-5, rtol=1e-4)


def test_image_only_tower_ignores_titles(products: pl.DataFrame) -> None:
    encoder = build_encoder(ModelSpec(fuse_title=False), seed=0)
    paths = products.get_column("image_path").to_list()
    one = embed_products(encoder, paths, ["x"] * len(paths))
    other = embed_products(encoder, paths, products.get_column("title").to_list())
    torch.testing.assert_close(one, other)


def test_checkpoint_is_open_clip_local_dir_with_version(tmp_path: Path, products: pl.DataFrame) -> None:
    encoder = build_encoder(ModelSpec(), seed=1)
    saved = save_encoder(encoder, tmp_path / "ckpt", {"thresholds": {"color": 0.5}})
    assert len(saved.version) == 12
    plain = open_clip.create_model(f"local-dir:{saved.directory}")  # open_clip itself reads it
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in encoder.model.parameters())
    loaded, extra = load_encoder(saved.directory)
    assert extra["version"] == saved.version and extra["thresholds"] == {"color": 0.5}
    paths, titles = products.get_column("image_path").to_list(), products.get_column("title").to_list()
    torch.testing.assert_close(embed_products(loaded, paths, titles), embed_products(encoder, paths, titles))
    # Fine-tuning source: the same folder as `local-dir:` model name.
    again = build_encoder(ModelSpec(name=f"local-dir:{saved.directory}"))
    torch.testing.assert_close(again.model.state_dict()["logit_scale"], encoder.model.state_dict()["logit_scale"])


def test_pretrained_checkpoint_file_is_loaded(tmp_path: Path) -> None:
    source = build_encoder(ModelSpec(), seed=5)
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in source.model.state_dict().items()}, str(path))
    loaded = build_encoder(ModelSpec(pretrained=str(path)), seed=0)
    for name, value in source.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], value), name


def test_unusable_model_sources_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match="not found"):
        build_encoder(ModelSpec(pretrained=str(tmp_path / "missing.safetensors")))
    with pytest.raises(ModelSourceError, match="local-dir"):
        build_encoder(ModelSpec(name=f"local-dir:{tmp_path}"))


def test_a_compact_text_vocabulary_keeps_the_training_texts_tokens_and_travels_with_the_checkpoint(tmp_path: Path, products: pl.DataFrame) -> None:
    titles = products.get_column("title").to_list()
    encoder = build_encoder(ModelSpec(), seed=0, texts=titles + ["color: navy blue", "color: navy blue"])
    kept = len(encoder.token_ids)
    assert encoder.model.token_embedding.weight.shape[0] == kept + 2 < 2000  # not open_clip's 49,408 rows
    tokens = encoder.tokenize(["color: navy blue", "zzqx unseenword"])
    assert tokens.max() < kept + 2 and int(tokens[0].argmax()) == int((tokens[0] != 0).sum()) - 1  # end token: the highest id, last
    words = tokens[1][1 : int((tokens[1] != 0).sum()) - 1]  # between the start and end tokens
    assert len(words) and (words == RARE_ID).all()  # words no training text used share one row
    saved = save_encoder(encoder, tmp_path / "ckpt", {})
    loaded, _ = load_encoder(saved.directory)
    assert loaded.token_ids == encoder.token_ids
    torch.testing.assert_close(loaded.tokenize(titles), encoder.tokenize(titles))
    paths = products.get_column("image_path").to_list()
    torch.testing.assert_close(embed_products(loaded, paths, titles), embed_products(encoder, paths, titles))


def test_the_tokenizer_fast_path_gives_open_clips_tokens_on_every_catalog_title(shared_dataset):
    """`clip_tokenizer` skips ftfy and HTML unescaping on printable ASCII without "&"; on
    every title of the shared catalog, and on text those steps do change, the tokens are
    open_clip's own."""
    import csv

    from open_clip.tokenizer import SimpleTokenizer

    from pinlanding_assets.core.clip_model import clip_tokenizer

    with (shared_dataset / "styles.csv").open(newline="") as handle:
        titles = sorted({row["productDisplayName"] or "" for row in csv.DictReader(handle)})
    tricky = ["Tom &amp; Jerry Tee", "Caf\u00e9 Mug", "mojibake \u00c3\u00a9t\u00c3\u00a9", "line\r\nbreak", "tab\there", "  Padded  Title ", "\x1b[31mred\x1b[0m", ""]
    texts = titles + tricky
    assert torch.equal(clip_tokenizer(24)(texts), SimpleTokenizer(context_length=24)(texts))
