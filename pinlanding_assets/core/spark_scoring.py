"""Product encoding on Spark: the same embeddings as in-process scoring, computed on executors.

When one machine is not enough, `spark_embedder` plugs into `scoring.score_products` in
place of the in-process encoder: products still to encode become a Spark DataFrame of
(row, image_path, title), split into partitions of about `batch_size` products, and
`mapInPandas` encodes each partition with the checkpoint. The checkpoint (open_clip local-dir:
config + safetensors, a few MB) travels inside the mapInPandas function itself (captured in
its closure, pickled with it), so executors need no shared model store and the session no
`sparkContext` (a broadcast variable would need one, and Spark Connect has none); each Python
worker loads it once per model version. Image paths must be readable from the executors (a
shared filesystem or object-store mount). The executors' Python must be able to import torch,
open_clip and this package: on a cluster, ship the project's environment (`spark.archives`,
docs/spark-clusters.md); without it the task fails with a message saying so.

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
from .compute import ComputeSettings, resolve_compute
from .scoring import Embedder, ScoringSettings

OUTPUT_SCHEMA = "row long, embedding array<float>"

# Per Python worker: model version -> loaded encoder (workers are reused across tasks).
_WORKER_ENCODERS: dict[str, object] = {}


def checkpoint_payload(directory: Path) -> dict[str, bytes | str]:
    return {
        "config": (directory / CONFIG_NAME).read_text(),
        "weights": (directory / WEIGHTS_NAME).read_bytes(),
    }


def _worker_encoder(version: str, payload: dict, compute: ComputeSettings):
    """The encoder of `version` in this worker process, materialized from the checkpoint
    bytes, on the executor's own device (`compute` resolved there: an executor with a GPU
    encodes on it)."""
    key = f"{version}:{compute.device}:{compute.precision}"
    if key not in _WORKER_ENCODERS:
        from .clip_model import load_encoder

        directory = Path(tempfile.mkdtemp(prefix=f"pinlanding-{version}-"))
        (directory / CONFIG_NAME).write_text(payload["config"])
        (directory / WEIGHTS_NAME).write_bytes(payload["weights"])
        _WORKER_ENCODERS[key] = load_encoder(directory, resolve_compute(compute))[0]
    return _WORKER_ENCODERS[key]


# What an executor needs to encode, and how to give it (the task fails with this message).
EXECUTOR_ENVIRONMENT_HELP = (
    "Spark scoring needs the project's Python environment on every executor (torch, open_clip, "
    "pinlanding_assets); this executor's Python ({python}) cannot import {missing}. Ship the environment: "
    "pack the venv (venv-pack -o pinlanding-env.tar.gz), set spark.archives=pinlanding-env.tar.gz#environment "
    "and spark.pyspark.python=./environment/bin/python (docs/spark-clusters.md), or score with engine 'local'."
)


def encode_partitions(version: str, payload: dict, batch_size: int, torch_threads: int, compute: ComputeSettings = ComputeSettings()):
    """The mapInPandas function: pandas batches of (row, image_path, title) -> (row, embedding).

    Self-contained on purpose: a nested function is pickled by value, with the checkpoint
    bytes in `payload`, and it imports this package only inside its body, so an executor
    without the project's environment gets `EXECUTOR_ENVIRONMENT_HELP` instead of an
    unpickling error that names no remedy."""
    help_text = EXECUTOR_ENVIRONMENT_HELP

    def encode(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import sys

        try:
            import torch

            from pinlanding_assets.core import spark_scoring
            from pinlanding_assets.core.clip_model import embed_products
        except ImportError as error:
            raise RuntimeError(help_text.format(python=sys.executable, missing=error.name or str(error))) from error

        torch.set_num_threads(torch_threads)
        encoder = spark_scoring._worker_encoder(version, payload, compute)
        for frame in frames:
            if frame.empty:
                continue
            emb = embed_products(encoder, frame["image_path"].tolist(), frame["title"].tolist(), batch_size).numpy()
            yield pd.DataFrame({"row": frame["row"].to_numpy(), "embedding": list(emb.astype(np.float32))})

    return encode


def spark_embedder(
    spark, checkpoint_dir: Path, version: str, batch_size: int = ScoringSettings.batch_size, torch_threads: int = ScoringSettings.spark_task_threads, compute: ComputeSettings = ComputeSettings()
) -> Embedder:
    """An `Embedder` that encodes on the Spark session's executors. `torch_threads` per
    task: Spark already runs one task per core, so 1 avoids oversubscribing cores. Works on
    a classic session and on Spark Connect alike (DataFrame calls only). `compute` is
    resolved on each executor: with device `auto`, executors with a GPU encode on it."""
    payload = checkpoint_payload(Path(checkpoint_dir))

    def embed(image_paths: list[str], titles: list[str], progress=None) -> np.ndarray:
        n = len(image_paths)
        if n == 0:
            return np.zeros((0, 0), dtype=np.float32)
        partitions = max(1, math.ceil(n / batch_size))
        frame = pd.DataFrame({"row": np.arange(n, dtype=np.int64), "image_path": image_paths, "title": titles})
        products = spark.createDataFrame(frame, schema="row long, image_path string, title string").repartitionByRange(partitions, "row")
        encoded = products.mapInPandas(encode_partitions(version, payload, batch_size, torch_threads, compute), schema=OUTPUT_SCHEMA).toPandas()
        if len(encoded) != n:
            raise RuntimeError(f"Spark returned {len(encoded)} embeddings for {n} products")
        encoded = encoded.sort_values("row")
        if progress:
            progress(n, n)
        return np.stack(encoded["embedding"].to_numpy()).astype(np.float32)

    return embed
