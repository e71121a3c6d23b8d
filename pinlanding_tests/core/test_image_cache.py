import logging
import os

import pytest
import torch
from PIL import Image

from pinlanding_assets.core import image_cache
from pinlanding_assets.core.clip_model import load_images
from pinlanding_assets.core.image_cache import DecodedImageStore

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

    monkeypatch.setattr(image_cache, "load_images", no_decoding)
    again = DecodedImageStore(tmp_path / "store", SIZE).load(list(reversed(paths)))  # a new store: another process, another run
    assert torch.equal(again, first.flip(0))


def test_only_the_images_not_stored_are_decoded_and_a_replaced_image_is_decoded_anew(tmp_path, monkeypatch):
    paths = write_images(tmp_path, [(200, 0, 0), (0, 200, 0)])
    store = DecodedImageStore(tmp_path / "store", SIZE)
    store.load(paths[:1])
    decoded = []
    real = image_cache.load_images
    monkeypatch.setattr(image_cache, "load_images", lambda p, size: decoded.extend(p) or real(p, size))
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
