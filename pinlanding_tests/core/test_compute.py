"""Where the towers run: device and precision settings, the CPU paths everywhere, the GPU
path where there is one."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import torch

from pinlanding_assets.core.catalog import load_catalog, locate_catalog
from pinlanding_assets.core.clip_model import ModelSpec, build_encoder, embed_products, load_encoder, save_encoder
from pinlanding_assets.core.compute import CPU_FP32, ComputeSettings, cpu_has_native_bf16, resolve_compute

HAS_CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def products(sample_catalog: Path) -> pl.DataFrame:
    return load_catalog(locate_catalog(sample_catalog)).products.head(40)


def test_auto_picks_what_the_machine_has_and_fp32_turns_autocast_off() -> None:
    auto = resolve_compute(ComputeSettings())
    assert auto.device.type == ("cuda" if HAS_CUDA else "cpu")
    if not HAS_CUDA:
        assert auto.training_dtype is None  # CPU training stays float32
        assert auto.inference_dtype == (torch.bfloat16 if cpu_has_native_bf16() else None)
        assert auto.inference_batch_size(512) == 512
    exact = resolve_compute(ComputeSettings(device="cpu", precision="fp32"))
    assert exact == CPU_FP32 and exact.inference_dtype is None and exact.training_dtype is None


def test_unknown_or_absent_devices_fail_clearly() -> None:
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_compute(ComputeSettings(device="tpu"))
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_compute(ComputeSettings(precision="fp8"))
    if not HAS_CUDA:
        with pytest.raises(RuntimeError, match="torch sees no CUDA GPU"):
            resolve_compute(ComputeSettings(device="cuda"))


def test_bf16_inference_stays_close_to_fp32(products: pl.DataFrame) -> None:
    encoder = build_encoder(ModelSpec(), seed=0)
    paths, titles = products.get_column("image_path").to_list(), products.get_column("title").to_list()
    exact = embed_products(encoder.place_on(CPU_FP32), paths, titles)
    half = embed_products(encoder.place_on(resolve_compute(ComputeSettings(device="cpu", precision="bf16"))), paths, titles)
    assert half.dtype == torch.float32  # embeddings leave the towers as float32 whatever the autocast
    cosine = (exact * half).sum(dim=1)
    assert cosine.min() > 0.99, cosine.min()


def test_a_model_loaded_for_inference_on_a_bf16_cpu_has_bf16_weights_and_scores_like_fp32(products: pl.DataFrame, tmp_path: Path) -> None:
    bf16 = resolve_compute(ComputeSettings(device="cpu", precision="bf16"))
    assert bf16.casts_weights_for_inference and not CPU_FP32.casts_weights_for_inference
    assert not type(bf16)(torch.device("cuda"), torch.bfloat16, torch.bfloat16).casts_weights_for_inference  # autocast stays on a GPU
    saved = save_encoder(build_encoder(ModelSpec(), seed=0), tmp_path / "model", {"spec": {**vars(ModelSpec())}})
    paths, titles = products.get_column("image_path").to_list(), products.get_column("title").to_list()
    exact = embed_products(load_encoder(saved.directory)[0], paths, titles)
    cast, _ = load_encoder(saved.directory, bf16)
    assert {p.dtype for p in cast.model.parameters()} == {torch.bfloat16}
    half = embed_products(cast, paths, titles)
    assert half.dtype == torch.float32
    assert (exact * half).sum(dim=1).min() > 0.99

    trained = build_encoder(ModelSpec(), seed=0).place_on(bf16)  # a model that may train keeps float32 weights
    assert {p.dtype for p in trained.model.parameters()} == {torch.float32}


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU on this machine: the GPU path of training and scoring is not exercised here")
def test_on_a_gpu_the_checkpoint_scores_like_on_the_cpu(products: pl.DataFrame, tmp_path: Path) -> None:
    saved = save_encoder(build_encoder(ModelSpec(), seed=0), tmp_path / "ckpt", {})
    paths, titles = products.get_column("image_path").to_list(), products.get_column("title").to_list()
    on_cpu = embed_products(load_encoder(saved.directory, CPU_FP32)[0], paths, titles)
    gpu = resolve_compute(ComputeSettings(device="cuda"))
    on_gpu = embed_products(load_encoder(saved.directory, gpu)[0], paths, titles)
    assert on_gpu.device.type == "cpu"  # handed back to the host
    assert (on_cpu * on_gpu).sum(dim=1).min() > 0.99
