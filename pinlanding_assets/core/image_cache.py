"""Decoded product images, kept on disk so an image is decoded once per size, not once per
model: scoring after a retrain re-encodes every product, and decoding a 60x80 catalog JPEG
(0.25 ms) cost more CPU than the towers spend on it (`bench/bench_model.py`).

The store is a folder per image size (`<data home>/decoded-images/<H>x<W>/`) of chunks: a
`<id>.npy` of letterboxed uint8 images [n, 3, H, W] (exactly `clip_model.load_images`'
pixels) and its `<id>.keys`, one key per row, written after the array and renamed into
place, so a chunk is either whole or absent and concurrent writers never share a file. A
key is the file's path, size and modification time: a replaced image has a new key and is
decoded again (its old rows stay until the folder is removed; nothing reads them).
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .clip_model import load_images

log = logging.getLogger(__name__)


def image_key(path: str) -> str | None:
    """What identifies this image's content for the store; None when the file cannot be
    stat'ed (it is then decoded, and the decoder says what is wrong)."""
    try:
        status = os.stat(path)
    except (OSError, ValueError):
        return None
    return f"{os.path.abspath(path)}\0{status.st_size}\0{status.st_mtime_ns}"


@dataclass
class DecodedImageStore:
    """`load(paths)` returns what `load_images(paths, size_hw)` returns, decoding only the
    images no earlier call (in any process) stored, and storing those."""

    root: Path  # <data home>/decoded-images
    size_hw: tuple[int, int]
    _index: dict[str, tuple[str, int]] = field(default_factory=dict, init=False, repr=False)
    _chunks: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)
    _indexed: set[str] = field(default_factory=set, init=False, repr=False)

    @property
    def directory(self) -> Path:
        return self.root / f"{self.size_hw[0]}x{self.size_hw[1]}"

    def _refresh_index(self) -> None:
        """Index the chunks written since the last look (by this or another process)."""
        if not self.directory.is_dir():
            return
        for keys_file in self.directory.glob("*.keys"):
            chunk = keys_file.stem
            if chunk in self._indexed:
                continue
            keys = keys_file.read_text(encoding="utf-8").split("\n")
            self._index.update({key: (chunk, row) for row, key in enumerate(keys) if key})
            self._indexed.add(chunk)

    def _rows(self, chunk: str) -> np.ndarray:
        if chunk not in self._chunks:
            self._chunks[chunk] = np.load(self.directory / f"{chunk}.npy", mmap_mode="r")
        return self._chunks[chunk]

    def load(self, paths: list[str]) -> torch.Tensor:
        self._refresh_index()
        height, width = self.size_hw
        out = np.empty((len(paths), 3, height, width), dtype=np.uint8)
        keys = [image_key(path) for path in paths]
        missing = []
        for i, key in enumerate(keys):
            found = self._index.get(key) if key is not None else None
            if found is None:
                missing.append(i)
            else:
                out[i] = self._rows(found[0])[found[1]]
        if missing:
            decoded = load_images([paths[i] for i in missing], self.size_hw).numpy()
            out[missing] = decoded
            self._write([keys[i] for i in missing], decoded)
        return torch.from_numpy(out)

    def _write(self, keys: list[str | None], images: np.ndarray) -> None:
        keep = [i for i, key in enumerate(keys) if key is not None and "\n" not in key]
        if not keep:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            chunk = uuid.uuid4().hex
            array_file, keys_file = self.directory / f"{chunk}.npy", self.directory / f"{chunk}.keys"
            with open(self.directory / f".{chunk}.npy.tmp", "wb") as handle:
                np.save(handle, np.ascontiguousarray(images[keep]))
            os.replace(self.directory / f".{chunk}.npy.tmp", array_file)
            (self.directory / f".{chunk}.keys.tmp").write_text("\n".join(keys[i] for i in keep), encoding="utf-8")
            os.replace(self.directory / f".{chunk}.keys.tmp", keys_file)
        except OSError as exc:  # a full or read-only disk costs a decode next time, not the run
            log.warning("decoded images not stored in %s: %s", self.directory, exc)
