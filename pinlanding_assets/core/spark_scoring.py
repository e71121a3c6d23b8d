"""Product encoding on Spark: the same embeddings as in-process scoring, computed on executors.

When one machine is not enough, `spark_embedder` plugs into `scoring.score_products` in
place of the in-process encoder: products still to encode become a Spark DataFrame of
(row, image_path, title), split into partitions of about `batch_size` products, and
`mapInPandas` encodes each partition with the checkpoint. The checkpoint (open_clip local-dir:
config + safetensors, a few MB) is shipped to executors as a broadcast variable, so executors
need no shared model store; each Python worker loads it once per model version. Image paths
must be readable from the executors (a shared filesystem or object-store mount).

Calibration and assignment stay on the driver (`ScoringModel.score`), so both paths assign
with exactly the same code.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from .clip_model import CONFIG_NAME, WEIGHTS_NAME
from .scoring import Embedder

OUTPUT_SCHEMA = "row long, embedding array<float>"

# Per Python worker: model version -> loaded encoder (workers are reused across tasks).
_WORKER_ENCODERS: dict[str, object] = {}


def checkpoint_payload(directory: Path) -> dict[str, bytes | str]:
    return {
        "config": (directory / CONFIG_NAME).read_text(),
        "weights": (directory / WEIGHTS_NAME).read_bytes(),
    }


def _worker_encoder(version: str, payload: dict):
    """The encoder of `version` in this worker process, materialized from the broadcast."""
    if version not in _WORKER_ENCODERS:
        from .clip_model import load_encoder

        directory = Path(tempfile.mkdtemp(prefix=f"pinlanding-{version}-"))
        (directory / CONFIG_NAME).write_text(payload["config"])
        (directory / WEIGHTS_NAME).write_bytes(payload["weights"])
        _WORKER_ENCODERS[version] = load_encoder(directory)[0]
    return _WORKER_ENCODERS[version]


def encode_partitions(version: str, broadcast, batch_size: int, torch_threads: int):
    """The mapInPandas function: pandas batches of (row, image_path, title) -> (row, embedding)."""

    def encode(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import torch

        from .clip_model import embed_products

        torch.set_num_threads(torch_threads)
        encoder = _worker_encoder(version, broadcast.value)
        for frame in frames:
            if frame.empty:
                continue
            emb = embed_products(encoder, frame["image_path"].tolist(), frame["title"].tolist(), batch_size).numpy()
            yield pd.DataFrame({"row": frame["row"].to_numpy(), "embedding": list(emb.astype(np.float32))})

    return encode


def spark_embedder(spark, checkpoint_dir: Path, version: str, batch_size: int = 512, torch_threads: int = 1) -> Embedder:
    """An `Embedder` that encodes on the Spark session's executors. `torch_threads` per
    task: Spark already runs one task per core, so 1 avoids oversubscribing cores."""
    broadcast = spark.sparkContext.broadcast(checkpoint_payload(Path(checkpoint_dir)))

    def embed(image_paths: list[str], titles: list[str], progress=None) -> np.ndarray:
        n = len(image_paths)
        if n == 0:
            return np.zeros((0, 0), dtype=np.float32)
        partitions = max(1, math.ceil(n / batch_size))
        frame = pd.DataFrame({"row": np.arange(n, dtype=np.int64), "image_path": image_paths, "title": titles})
        products = spark.createDataFrame(frame, schema="row long, image_path string, title string").repartitionByRange(partitions, "row")
        encoded = products.mapInPandas(encode_partitions(version, broadcast, batch_size, torch_threads), schema=OUTPUT_SCHEMA).toPandas()
        if len(encoded) != n:
            raise RuntimeError(f"Spark returned {len(encoded)} embeddings for {n} products")
        encoded = encoded.sort_values("row")
        if progress:
            progress(n, n)
        return np.stack(encoded["embedding"].to_numpy()).astype(np.float32)

    return embed
