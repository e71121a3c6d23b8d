"""The towers' inputs, prepared once and kept on disk: each product's image decoded and
letterboxed to the model's size, and each title's BPE tokens.

Neither depends on the model's weights, so neither has to be paid again when a retrained
model scores every product: decoding a 60x80 catalog JPEG (0.25 ms) cost more CPU than the
towers spend on it, and tokenizing the catalog's titles (pure Python) a fifth of scoring
from decoded images (`bench/bench_model.py`). Ingest prepares both for the shard's products
(`ModelInputs.prepare`), so even the first scoring reads them; whatever is missing (another
image size, a model with another context length) is prepared on first use and kept.

Each store is a folder (`<data home>/model-inputs/images-<H>x<W>/`, `.../title-bpe-<L>/`) of
chunks: a `<id>.npy` of rows of one shape and type and its `<id>.keys`, one key per row,
written after the array and renamed into place, so a chunk is either whole or absent and
concurrent writers never share a file. An image's key is its path, size and modification
time (a replaced image has a new key and is decoded again; its old rows stay until the
folder is removed, and nothing reads them); a title's key is the SHA-1 of its text.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .clip_model import ModelSpec, clip_tokenizer, load_images

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInputSettings:
    """Whether ingest prepares the towers' inputs of the shard's products."""

    # Decode every valid product's image and tokenize its title at ingest (at the default
    # model's image size and context length, ModelSpec), so the first scoring only runs the
    # towers; off, the first scoring prepares them itself (and keeps them).
    prepare_at_ingest: bool = True


@dataclass
class ChunkStore:
    """Rows of one shape and type by key, in the chunk files of one folder (see the module
    docstring); chunks written by other processes are picked up on the next `find`."""

    directory: Path
    row_shape: tuple[int, ...]
    dtype: np.dtype
    _index: dict[str, tuple[str, int]] = field(default_factory=dict, init=False, repr=False)
    _chunks: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def _refresh_index(self) -> None:
        if not self.directory.is_dir():
            return
        for keys_file in self.directory.glob("*.keys"):
            chunk = keys_file.stem
            if chunk in self._chunks:
                continue
            keys = keys_file.read_text(encoding="utf-8").split("\n")
            self._index.update({key: (chunk, row) for row, key in enumerate(keys) if key})
            self._chunks[chunk] = np.load(self.directory / f"{chunk}.npy", mmap_mode="r")

    def find(self, keys: list[str | None]) -> tuple[np.ndarray, list[int]]:
        """([len(keys), *row_shape] with the stored rows filled in, positions not stored)."""
        self._refresh_index()
        out = np.empty((len(keys), *self.row_shape), dtype=self.dtype)
        missing, stored = [], {}  # chunk -> (positions in out, rows in the chunk)
        for i, key in enumerate(keys):
            found = self._index.get(key) if key is not None else None
            if found is None:
                missing.append(i)
            else:
                positions, rows = stored.setdefault(found[0], ([], []))
                positions.append(i)
                rows.append(found[1])
        for chunk, (positions, rows) in stored.items():  # one copy per chunk, not one per row
            source = self._chunks[chunk]
            if _consecutive(positions) and _consecutive(rows):  # the usual case: rows asked in the order they were stored
                out[positions[0]:positions[-1] + 1] = source[rows[0]:rows[-1] + 1]
            else:
                out[positions] = source[np.asarray(rows)]
        return out, missing

    def add(self, keys: list[str | None], rows: np.ndarray, what: str) -> None:
        """Store `rows` under `keys` (a None key or one with a line break is not stored)."""
        keep = [i for i, key in enumerate(keys) if key is not None and "\n" not in key]
        if not keep:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            chunk = uuid.uuid4().hex
            array_file, keys_file = self.directory / f"{chunk}.npy", self.directory / f"{chunk}.keys"
            with open(self.directory / f".{chunk}.npy.tmp", "wb") as handle:
                np.save(handle, np.ascontiguousarray(rows[keep], dtype=self.dtype))
            os.replace(self.directory / f".{chunk}.npy.tmp", array_file)
            (self.directory / f".{chunk}.keys.tmp").write_text("\n".join(keys[i] for i in keep), encoding="utf-8")
            os.replace(self.directory / f".{chunk}.keys.tmp", keys_file)
        except OSError as exc:  # a full or read-only disk costs preparing them again next time, not the run
            log.warning("%s not stored in %s: %s", what, self.directory, exc)


def _consecutive(numbers: list[int]) -> bool:
    """A run n, n+1, ...: copied as one slice of the memory-mapped chunk, which reads it
    sequentially (a gather of the same rows faulted its pages in one by one, 2x slower)."""
    return numbers[-1] - numbers[0] == len(numbers) - 1 and all(b - a == 1 for a, b in zip(numbers, numbers[1:]))


def image_key(path: str) -> str | None:
    """What identifies this image's content for the store; None when the file cannot be
    stat'ed (it is then decoded, and the decoder says what is wrong)."""
    try:
        status = os.stat(path)
    except (OSError, ValueError):
        return None
    return f"{os.path.abspath(path)}\0{status.st_size}\0{status.st_mtime_ns}"


def title_key(title: str) -> str:
    return hashlib.sha1(title.encode("utf-8", "surrogatepass")).hexdigest()


class DecodedImageStore:
    """`load(paths)` returns what `clip_model.load_images(paths, size_hw)` returns, decoding
    only the images no earlier call (in any process) stored, and storing those."""

    def __init__(self, root: Path, size_hw: tuple[int, int]):
        self.size_hw = tuple(size_hw)
        self.chunks = ChunkStore(Path(root) / f"images-{self.size_hw[0]}x{self.size_hw[1]}", (3, *self.size_hw), np.dtype(np.uint8))

    def load(self, paths: list[str]) -> torch.Tensor:
        keys = [image_key(path) for path in paths]
        out, missing = self.chunks.find(keys)
        if missing:
            decoded = load_images([paths[i] for i in missing], self.size_hw).numpy()
            out[missing] = decoded
            self.chunks.add([keys[i] for i in missing], decoded, "decoded images")
        return torch.from_numpy(out)


class TitleTokenStore:
    """`bpe(titles)` returns what `clip_model.clip_tokenizer(context_length)(titles)` returns
    (the BPE ids every encoder's `tokenize` starts from), tokenizing only titles not stored."""

    def __init__(self, root: Path, context_length: int):
        self.context_length = context_length
        self.chunks = ChunkStore(Path(root) / f"title-bpe-{context_length}", (context_length,), np.dtype(np.int32))
        self._tokenizer = None

    def bpe(self, titles: list[str]) -> torch.Tensor:
        keys = [title_key(t) for t in titles]
        out, missing = self.chunks.find(keys)
        if missing:
            self._tokenizer = self._tokenizer or clip_tokenizer(self.context_length)
            tokens = self._tokenizer([titles[i] for i in missing]).numpy()
            out[missing] = tokens
            self.chunks.add([keys[i] for i in missing], tokens, "title tokens")
        return torch.from_numpy(out.astype(np.int64))


@dataclass(frozen=True)
class PreparedInputs:
    products: int
    images_decoded: int  # images not stored before, now stored
    images_left_to_scoring: int  # in chunks that failed to decode (scoring decodes them and says why)
    titles_tokenized: int  # distinct titles not stored before, now stored
    seconds: float


class ModelInputs:
    """The data home's stores of the towers' inputs, for one image size and context length."""

    def __init__(self, root: Path, image_size: tuple[int, int] = ModelSpec.image_size, context_length: int = ModelSpec.context_length):
        self.images = DecodedImageStore(root, image_size)
        self.titles = TitleTokenStore(root, context_length)

    def prepare(self, image_paths: list[str], titles: list[str], chunk_size: int = 512, threads: int = 2) -> PreparedInputs:
        """Store the inputs of these products that are not stored yet: images decoded in
        `threads` threads (Pillow releases the GIL while decoding), each distinct title
        tokenized once. An image that cannot be decoded is left out (scoring decodes it
        itself and says what is wrong), not the shard."""
        started = time.perf_counter()
        distinct = list(dict.fromkeys(str(t) for t in titles))  # as tokenize_titles reads them
        titles_missing = len(self.titles.chunks.find([title_key(t) for t in distinct])[1])
        self.titles.bpe(distinct)
        keys = [image_key(p) for p in image_paths]
        missing = [image_paths[i] for i in self.images.chunks.find(keys)[1]]
        chunks = [missing[i:i + chunk_size] for i in range(0, len(missing), chunk_size)]
        failed = 0
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="prepare-inputs") as pool:
            for chunk, error in zip(chunks, pool.map(_decode_and_store(self.images), chunks)):
                if error:
                    failed += len(chunk)
                    log.warning("images of %d products not prepared (%s); scoring decodes them", len(chunk), error)
        return PreparedInputs(len(image_paths), len(missing) - failed, failed, titles_missing, time.perf_counter() - started)


def _decode_and_store(store: DecodedImageStore) -> Callable[[list[str]], str]:
    def run(paths: list[str]) -> str:
        try:
            store.load(paths)
        except Exception as exc:  # e.g. an image deleted since validation: one chunk goes unprepared
            return f"{type(exc).__name__}: {exc}"
        return ""

    return run
