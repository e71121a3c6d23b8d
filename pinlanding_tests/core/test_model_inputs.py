import logging
import os

import pytest
import torch
from PIL import Image

from pinlanding_assets.core import model_inputs
from pinlanding_assets.core.clip_model import ModelSpec, build_encoder, clip_tokenizer, embed_products, load_images
from pinlanding_assets.core.model_inputs import DecodedImageStore, ModelInputs, TitleTokenStore

SIZE = (16, 12)


def write_images(folder, colours):
    paths = []
    for i, rgb in enumerate(colours):
        path = folder / f"p{i}.png"
        Image.new("RGB", (30, 40), rgb).save(path)
        paths.append(str(path))
    return paths


def test_stored_images_are_the_decoded_pixels_and_are_not_decoded_again(tmp_path, monkeypatch):
    paths = write_images(tmp_path, [(200, 0, 0), (0, 200, 0), (0, 0, 200)])
    first = DecodedImageStore(tmp_path / "store", SIZE).load(paths)
    assert torch.equal(first, load_images(paths, SIZE))

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(model_inputs, "load_images", no_decoding)
    again = DecodedImageStore(tmp_path / "store", SIZE).load(list(reversed(paths)))  # a new store: another process, another run
    assert torch.equal(again, first.flip(0))


def test_only_the_images_not_stored_are_decoded_and_a_replaced_image_is_decoded_anew(tmp_path, monkeypatch):
    paths = write_images(tmp_path, [(200, 0, 0), (0, 200, 0)])
    store = DecodedImageStore(tmp_path / "store", SIZE)
    store.load(paths[:1])
    decoded = []
    real = model_inputs.load_images
    monkeypatch.setattr(model_inputs, "load_images", lambda p, size: decoded.extend(p) or real(p, size))
    store.load(paths)
    assert decoded == [paths[1]]

    Image.new("RGB", (30, 40), (255, 255, 0)).save(paths[0])  # the merchant replaced the picture
    os.utime(paths[0], ns=(1, 1))
    decoded.clear()
    assert torch.equal(DecodedImageStore(tmp_path / "store", SIZE).load(paths), real(paths, SIZE))
    assert decoded == [paths[0]]


def test_a_store_that_cannot_be_written_costs_a_decode_not_the_run(tmp_path, caplog):
    paths = write_images(tmp_path, [(10, 20, 30)])
    (tmp_path / "not-a-folder").write_text("x")
    with caplog.at_level(logging.WARNING):
        images = DecodedImageStore(tmp_path / "not-a-folder", SIZE).load(paths)
    assert torch.equal(images, load_images(paths, SIZE))
    assert "decoded images not stored" in caplog.text


def test_a_missing_image_still_fails_as_decoding_does(tmp_path):
    with pytest.raises(FileNotFoundError):
        DecodedImageStore(tmp_path / "store", SIZE).load([str(tmp_path / "gone.jpg")])


TITLES = ["Navy Blue Casual Shirt", "Café Crème Kurta & Dupatta", "line\nbreak title", "Navy Blue Casual Shirt"]


def test_stored_title_tokens_are_the_tokenizers_and_are_not_tokenized_again(tmp_path, monkeypatch):
    first = TitleTokenStore(tmp_path / "store", 24).bpe(TITLES)
    assert torch.equal(first, clip_tokenizer(24)(TITLES))

    monkeypatch.setattr(model_inputs, "clip_tokenizer", lambda *a: pytest.fail("tokenized again"))
    again = TitleTokenStore(tmp_path / "store", 24).bpe(list(reversed(TITLES)))  # another process, another run
    assert torch.equal(again, first.flip(0))


def test_prepared_inputs_give_the_same_embeddings_without_decoding_or_tokenizing(tmp_path, monkeypatch):
    paths = write_images(tmp_path, [(200, 0, 0), (0, 200, 0), (0, 0, 200), (9, 9, 9)])
    spec = ModelSpec(image_size=(32, 32))
    encoder = build_encoder(spec, seed=0, texts=TITLES)  # a compact text vocabulary: stored BPE ids go through it
    expected = embed_products(encoder, paths, TITLES)

    prepared = ModelInputs(tmp_path / "inputs", spec.image_size, spec.context_length).prepare(paths, TITLES)
    assert (prepared.products, prepared.images_decoded, prepared.titles_tokenized) == (4, 4, 3)
    assert ModelInputs(tmp_path / "inputs", spec.image_size, spec.context_length).prepare(paths, TITLES).images_decoded == 0  # idempotent

    monkeypatch.setattr(model_inputs, "load_images", lambda *a: pytest.fail("decoded again"))
    monkeypatch.setattr(model_inputs, "clip_tokenizer", lambda *a: pytest.fail("tokenized again"))
    monkeypatch.setattr(encoder, "tokenizer", None)  # the encoder's own tokenizer is not asked either
    stores = ModelInputs(tmp_path / "inputs", spec.image_size, spec.context_length)
    assert torch.allclose(embed_products(encoder, paths, TITLES, images=stores.images.load, title_bpe=stores.titles.bpe), expected)


def test_an_image_that_breaks_preparing_leaves_its_chunk_to_scoring(tmp_path, caplog):
    paths = write_images(tmp_path, [(1, 2, 3)]) + [str(tmp_path / "deleted-since-validation.png")]
    with caplog.at_level(logging.WARNING):
        prepared = ModelInputs(tmp_path / "inputs", SIZE).prepare(paths, ["a", "b"])
    assert (prepared.images_decoded, prepared.images_left_to_scoring) == (0, 2)
    assert "images of 2 products not prepared" in caplog.text
