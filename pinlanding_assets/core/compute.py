"""Where the towers run and in which precision: the `device` and `precision` settings of
training, scoring and the MiniLM vocabulary merge (one definition, `ComputeSettings`).

* device `auto`: the first CUDA GPU when torch sees one, else the CPU; or `cpu`, `cuda`,
  `cuda:N`. A GPU asked for but absent is an error that says so, never a silent CPU run.
* precision `auto`: on CUDA, autocast in bfloat16 (float16 with a gradient scaler where the
  GPU lacks bfloat16) for training and inference; on a CPU with native bfloat16 (AVX-512
  BF16 / AMX, `torch.ops.mkldnn._is_mkldnn_bf16_supported`), bfloat16 autocast for
  inference only — the towers' forward passes run 1.8x faster there and the held-out and
  page figures did not move (docs/model.md); a model loaded for inference then has its
  weights cast to bfloat16 rather than autocast (`casts_weights_for_inference`) — while CPU
  training stays float32 (autocast bought it 4%); `fp32`: no autocast anywhere (the results of earlier versions, bit for
  bit); `bf16`: bfloat16 autocast for inference and training on any device.

On CUDA, inference batches grow (`inference_batch_size`) and the uint8 images are pinned
and copied asynchronously; the CPU path keeps its configured batch sizes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

DEVICES = ("auto", "cpu", "cuda")  # or "cuda:N"
PRECISIONS = ("auto", "fp32", "bf16")
CUDA_INFERENCE_BATCH_FACTOR = 8  # a GPU encodes 8x larger batches than the 2-core CPU default without running out of memory (tower of 6M parameters, 64x48 images)


@dataclass(frozen=True)
class ComputeSettings:
    """Where the towers run."""

    device: str = "auto"  # auto: the first CUDA GPU when torch sees one, else the CPU; or cpu, cuda, cuda:N
    precision: str = "auto"  # auto: bf16 autocast on CUDA, and for inference on CPUs with native bf16; fp32: none; bf16: everywhere


@dataclass(frozen=True)
class Compute:
    """A resolved `ComputeSettings`: the torch device and the autocast dtype of inference
    and of training (None: float32, no autocast)."""

    device: torch.device
    inference_dtype: torch.dtype | None = None
    training_dtype: torch.dtype | None = None

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self, training: bool) -> contextlib.AbstractContextManager:
        dtype = self.training_dtype if training else self.inference_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    @property
    def casts_weights_for_inference(self) -> bool:
        """A model loaded for inference only gets its weights cast to the inference dtype
        instead of autocast, on the CPU: autocast there casts every weight on every call, a
        fifth of the towers' time at our sizes (bench/bench_model.py). On CUDA autocast stays."""
        return self.device.type == "cpu" and self.inference_dtype is not None

    def needs_grad_scaler(self) -> bool:
        """float16 training needs loss scaling (bfloat16 does not)."""
        return self.is_cuda and self.training_dtype == torch.float16

    def inference_batch_size(self, configured: int) -> int:
        return configured * CUDA_INFERENCE_BATCH_FACTOR if self.is_cuda else configured

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """`tensor` on the device; host tensors go through pinned memory to a GPU."""
        if not self.is_cuda:
            return tensor
        return tensor.pin_memory().to(self.device, non_blocking=True)

    def describe(self) -> str:
        name = lambda dtype: "fp32" if dtype is None else str(dtype).removeprefix("torch.")  # noqa: E731
        return f"{self.device} (inference {name(self.inference_dtype)}, training {name(self.training_dtype)})"


CPU_FP32 = Compute(torch.device("cpu"))


def cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False


def resolve_compute(settings: ComputeSettings = ComputeSettings()) -> Compute:
    """The device and precisions `settings` name on this machine (see the module docstring)."""
    if not (settings.device in DEVICES or (settings.device.startswith("cuda:") and settings.device[5:].isdigit())):
        raise ValueError(f"device must be one of {', '.join(DEVICES)} or cuda:N, got {settings.device!r}")
    if settings.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {settings.precision!r}")
    if settings.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(settings.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {settings.device!r} asked for, but torch sees no CUDA GPU (torch {torch.__version__}); use device 'auto' or 'cpu'")
    if settings.precision == "fp32":
        return Compute(device)
    if settings.precision == "bf16":
        return Compute(device, torch.bfloat16, torch.bfloat16)
    if device.type == "cuda":
        half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return Compute(device, half, half)
    return Compute(device, torch.bfloat16 if cpu_has_native_bf16() else None, None)
