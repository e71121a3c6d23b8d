"""The PinLanding dual encoder on open_clip: towers, inputs, checkpoints.

* Product tower: the image through open_clip's vision tower and (optionally) the title
  through its text tower, the two unit vectors summed and re-normalized.
* Attribute tower: a phrase built from key and value ("color: navy blue") through the
  same text tower, so titles and attribute phrases share one space.

Checkpoints use open_clip's `local-dir` layout (`open_clip_config.json` +
`open_clip_model.safetensors`), so `open_clip.create_model("local-dir:<dir>")` loads them;
our own settings ride along in the config under "pinlanding".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import open_clip
import polars as pl
import torch
import torch.nn.functional as F
from open_clip.tokenizer import SimpleTokenizer, _clean_lower, whitespace_clean
from PIL import Image
from safetensors.torch import load_file, save_file

from .catalog import open_image
from .compute import CPU_FP32, Compute

CONFIG_NAME = "open_clip_config.json"
WEIGHTS_NAME = "open_clip_model.safetensors"
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ModelSpec:
    """Which encoder to start from. `name` is an open_clip model name, `local-dir:<path>`,
    or "pinlanding-tiny" (our small from-scratch config). `pretrained` is an open_clip tag
    (downloaded from the hub, so only when one is reachable) or a checkpoint file
    (.safetensors / .pt); None trains from scratch."""

    name: str = "pinlanding-tiny"  # open_clip model name, "local-dir:<path>" or pinlanding-tiny
    pretrained: str | None = None  # open_clip tag (needs a hub) or checkpoint file; None: from scratch
    image_size: tuple[int, int] = (64, 48)  # (height, width): the catalog's images are 3:4
    context_length: int = 24  # 99% of the catalog's titles fit in 16 BPE tokens
    fuse_title: bool = True  # product tower = image + title embedding (False: image only)


# Two vision blocks and one text block: on the full catalog's sample (2026-12-02, 3,000
# held-out products) the published top-1 equals that of 4 + 3 blocks (type 0.876 / colour
# 0.894 against 0.873 / 0.895) in a fifth of the training time; the product's text already
# names most attributes (text evidence), the towers fill in and rank.
TINY_CONFIG = {
    "embed_dim": 128,
    "vision_cfg": {"layers": 2, "width": 192, "head_width": 64, "patch_size": 16, "mlp_ratio": 2.0},
    "text_cfg": {"vocab_size": 49408, "width": 192, "heads": 3, "layers": 1},
}

KEY_PHRASES = {"product_type": "product type", "occasion": "occasion"}

# A from-scratch text tower learns embeddings only for the BPE tokens its training texts use
# (a few thousand of open_clip's 49,408): the full table made half of a training step's cost
# (its dense gradient and AdamW update), for rows no step ever reads. Tokens seen fewer than
# `MIN_TOKEN_TEXTS` times share one "rare token" row, which training then also learns.
MIN_TOKEN_TEXTS = 2
PAD_ID, RARE_ID = 0, 1  # compact ids; the kept BPE tokens follow in their BPE order, so the
# end-of-text token (the highest BPE id, whose position the text tower pools) stays the highest


_PLAIN_TEXT = re.compile(r"[ -%'-~]*")  # printable ASCII without "&"


def _clean_plain_first(text: str) -> str:
    """open_clip's "lower" cleaning, without ftfy and HTML unescaping for text they leave as
    it is: printable ASCII with no "&" has no mojibake, control character, line break or
    entity to fix (ftfy was half of tokenizing the catalog's titles). Any other text takes
    open_clip's own path; `test_clip_model.py` holds both equal on every catalog title."""
    if _PLAIN_TEXT.fullmatch(text):
        return whitespace_clean(text).lower()
    return _clean_lower(text)


def clip_tokenizer(context_length: int) -> SimpleTokenizer:
    """open_clip's BPE tokenizer (lower-case cleaning), with the plain-text fast path."""
    tokenizer = SimpleTokenizer(context_length=context_length, clean="lower")
    tokenizer.clean_fn = _clean_plain_first
    return tokenizer


def compact_token_ids(tokenizer: SimpleTokenizer, texts: Sequence[str], min_texts: int = MIN_TOKEN_TEXTS) -> tuple[int, ...]:
    """The BPE ids a compact text vocabulary keeps (sorted): those in at least `min_texts`
    of `texts`, and the start and end tokens."""
    counts: dict[int, int] = {}
    for text in dict.fromkeys(texts):
        for token in set(tokenizer.encode(text)):
            counts[token] = counts.get(token, 0) + 1
    specials = {tokenizer.sot_token_id, tokenizer.eot_token_id}
    return tuple(sorted({t for t, n in counts.items() if n >= min_texts} | specials))


def token_lookup(token_ids: Sequence[int], bpe_size: int) -> torch.Tensor:
    """BPE id -> compact id: padding stays 0, kept tokens follow RARE_ID, others become it."""
    lookup = torch.full((bpe_size,), RARE_ID, dtype=torch.long)
    lookup[PAD_ID] = PAD_ID
    lookup[torch.tensor(list(token_ids), dtype=torch.long)] = torch.arange(2, len(token_ids) + 2)
    return lookup


def attribute_phrase(key: str, value: str) -> str:
    return f"{KEY_PHRASES.get(key, key.replace('_', ' '))}: {value}"


@dataclass
class DualEncoder:
    """An open_clip CLIP model plus how we feed it."""

    model: torch.nn.Module
    model_cfg: dict
    spec: ModelSpec
    tokenizer: SimpleTokenizer = field(repr=False)
    token_ids: tuple[int, ...] | None = None  # the compact text vocabulary's BPE ids (None: all of them)
    compute: Compute = CPU_FP32  # where the towers run, in which precision (`place_on`)

    def __post_init__(self) -> None:
        self._lookup = token_lookup(self.token_ids, self.tokenizer.vocab_size) if self.token_ids else None
        self._weights_dtype = torch.float32  # the towers' own dtype (float32 unless `place_on` cast them)

    def place_on(self, compute: Compute, for_inference: bool = False) -> "DualEncoder":
        """Run the towers on `compute`'s device and precision (in place; returns self).
        Inputs may stay on the host: each encode call moves them, and every embedding it
        returns is float32. `for_inference` (never trained again): where `compute` says so,
        the weights themselves are cast to the inference dtype instead of autocasting."""
        self.compute = compute
        self.model.to(compute.device)
        if for_inference and compute.casts_weights_for_inference:
            self.model.to(compute.inference_dtype)
            self._weights_dtype = compute.inference_dtype
        return self

    def _precision(self) -> contextlib.AbstractContextManager:
        """Autocast as `compute` says, unless the weights are already in that dtype."""
        if self._weights_dtype != torch.float32:
            return contextlib.nullcontext()
        return self.compute.autocast(self.model.training)

    @property
    def image_size(self) -> tuple[int, int]:
        size = self.model.visual.image_size
        return tuple(size) if isinstance(size, (tuple, list)) else (size, size)

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return self.model_token_ids(self.tokenizer(texts))

    def model_token_ids(self, bpe_tokens: torch.Tensor) -> torch.Tensor:
        """The text tower's ids of BPE tokens [N, context] (`clip_tokenizer`'s output, e.g.
        stored by `model_inputs.TitleTokenStore`): the compact vocabulary's, when it has one."""
        bpe_tokens = bpe_tokens.long()
        return self._lookup[bpe_tokens] if self._lookup is not None else bpe_tokens

    def encode_images(self, images_u8: torch.Tensor) -> torch.Tensor:
        images = normalize_images(self.compute.to_device(images_u8)).to(self._weights_dtype)
        with self._precision():
            features = self.model.encode_image(images)
        return F.normalize(features.float(), dim=-1)

    def encode_texts(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = self.compute.to_device(tokens)
        with self._precision():
            features = encode_text_trimmed(self.model, tokens)
        return F.normalize(features.float(), dim=-1)

    def fuse(self, image: torch.Tensor, title: torch.Tensor | None, title_weight: torch.Tensor | None = None) -> torch.Tensor:
        """Sum of the unit image and title vectors, re-normalized; `title_weight` [N] (0 or 1
        in training, see TrainingConfig.title_dropout) drops the title of some products."""
        if not self.spec.fuse_title or title is None:
            return image
        if title_weight is not None:
            title = title * title_weight.to(title.device)[:, None]
        return F.normalize(image + title, dim=-1)

    def encode_products(self, images_u8: torch.Tensor, title_tokens: torch.Tensor | None, title_weight: torch.Tensor | None = None) -> torch.Tensor:
        image = self.encode_images(images_u8)
        if not self.spec.fuse_title or title_tokens is None:
            return image
        return self.fuse(image, self.encode_texts(title_tokens), title_weight)

    def encode_attributes(self, phrase_tokens: torch.Tensor) -> torch.Tensor:
        return self.encode_texts(phrase_tokens)

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.exp()


def encode_text_trimmed(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip's CLIP.encode_text on the tokens cut after the longest sequence's EOT.

    The text tower is causal and pools the EOT position, so the padding columns after the
    last EOT cannot change the result; dropping them makes titles (~10 tokens) and attribute
    phrases (~6) 2-4x cheaper than running the full context. Models without the CLIP text
    layout (e.g. HF text towers) use their own encode_text."""
    if not hasattr(model, "positional_embedding") or getattr(model, "text_pool_type", "argmax") != "argmax":
        return model.encode_text(tokens)
    used = int((tokens != 0).any(dim=0).nonzero().max()) + 1 if tokens.numel() else 1
    tokens = tokens[:, :used]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype) + model.positional_embedding[:used].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:used, :used])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)]
    if model.text_projection is not None:
        x = model.text_projection(x) if isinstance(model.text_projection, torch.nn.Linear) else x @ model.text_projection
    return x


class ModelSourceError(ValueError):
    """The configured weights cannot be loaded (missing file, unreachable hub)."""


def build_encoder(spec: ModelSpec, seed: int = 0, texts: Sequence[str] | None = None) -> DualEncoder:
    """The encoder to train: our tiny config from scratch (or from a checkpoint file), any
    open_clip model (pretrained tag or file), or a `local-dir:` folder (fine-tuning). Our
    tiny config from scratch given its training `texts` gets a compact text vocabulary
    (`compact_token_ids`)."""
    torch.manual_seed(seed)
    if spec.pretrained and _looks_like_path(spec.pretrained) and not Path(spec.pretrained).is_file():
        raise ModelSourceError(f"pretrained checkpoint file not found: {spec.pretrained}")
    token_ids = None
    if spec.name == "pinlanding-tiny":
        cfg = json.loads(json.dumps(TINY_CONFIG))
        cfg["vision_cfg"]["image_size"] = list(spec.image_size)
        cfg["text_cfg"]["context_length"] = spec.context_length
        if texts is not None and not spec.pretrained:
            token_ids = compact_token_ids(clip_tokenizer(spec.context_length), texts)
            cfg["text_cfg"]["vocab_size"] = len(token_ids) + 2
        model = open_clip.model.CLIP(**cfg)
        if spec.pretrained:
            state = load_file(spec.pretrained) if spec.pretrained.endswith(".safetensors") else torch.load(spec.pretrained, map_location="cpu")
            model.load_state_dict(state)
    elif spec.name.startswith("local-dir:"):
        directory = Path(spec.name.removeprefix("local-dir:"))
        if not (directory / CONFIG_NAME).is_file():
            raise ModelSourceError(f"{directory} is not an open_clip local-dir checkpoint (no {CONFIG_NAME})")
        model = open_clip.create_model(spec.name)
        config = json.loads((directory / CONFIG_NAME).read_text())
        cfg = config.get("model_cfg", {})
        token_ids = _saved_token_ids(config)
    else:
        try:
            model = open_clip.create_model(spec.name, pretrained=spec.pretrained)
        except Exception as exc:  # a tag is fetched from the hub; offline that fails deep inside
            raise ModelSourceError(
                f"cannot load open_clip model {spec.name!r} with pretrained={spec.pretrained!r} ({type(exc).__name__}: {exc}); "
                "offline, use a checkpoint file, a local-dir: folder, or no pretrained weights"
            ) from exc
        cfg = open_clip.get_model_config(spec.name) or {}
    context = cfg.get("text_cfg", {}).get("context_length", spec.context_length)
    return DualEncoder(model=model, model_cfg=cfg, spec=spec, tokenizer=clip_tokenizer(context), token_ids=token_ids)


def _saved_token_ids(config: dict) -> tuple[int, ...] | None:
    ids = config.get("pinlanding", {}).get("token_ids")
    return tuple(ids) if ids else None


def _looks_like_path(text: str) -> bool:
    return "/" in text or text.endswith((".safetensors", ".pt", ".pth", ".bin"))


def normalize_images(images_u8: torch.Tensor) -> torch.Tensor:
    """(x / 255 - mean) / std per channel, as one scale and one shift applied in place on a
    float32 copy: the broadcast division and subtraction over a batch took 9 ms per 512
    images on this CPU (a sixth of the towers' time), the in-place pair 1 ms."""
    std = torch.tensor(STD, device=images_u8.device).view(1, 3, 1, 1)
    scale = 1.0 / (255.0 * std)
    shift = -torch.tensor(MEAN, device=images_u8.device).view(1, 3, 1, 1) / std
    return images_u8.to(torch.float32, copy=True).mul_(scale).add_(shift)


def load_images(paths: list[str], size_hw: tuple[int, int]) -> torch.Tensor:
    """uint8 tensor [N, 3, H, W]; images are letterboxed on white to keep their shape."""
    height, width = size_hw
    out = np.empty((len(paths), 3, height, width), dtype=np.uint8)
    for i, path in enumerate(paths):
        with open_image(path) as img:
            img.draft("RGB", (width * 2, height * 2))  # JPEG: decode at reduced size, fast
            rgb = img.convert("RGB")
            rgb.thumbnail((width, height))
            canvas = Image.new("RGB", (width, height), (255, 255, 255))
            canvas.paste(rgb, ((width - rgb.width) // 2, (height - rgb.height) // 2))
        out[i] = np.asarray(canvas).transpose(2, 0, 1)
    return torch.from_numpy(out)


@dataclass(frozen=True)
class SavedModel:
    directory: Path
    version: str


def save_encoder(encoder: DualEncoder, directory: Path, extra: dict) -> SavedModel:
    """Write the open_clip `local-dir` layout; the version is a hash of the weights."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in encoder.model.state_dict().items()}
    save_file(state, directory / WEIGHTS_NAME)
    digest = hashlib.sha1((directory / WEIGHTS_NAME).read_bytes()).hexdigest()[:12]
    config = {
        "model_cfg": encoder.model_cfg,
        "preprocess_cfg": {"size": list(encoder.image_size), "mean": list(MEAN), "std": list(STD)},
        "pinlanding": {"spec": asdict(encoder.spec), "version": digest, "token_ids": list(encoder.token_ids or []), **extra},
    }
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2))
    return SavedModel(directory, digest)


def saved_settings(directory: Path) -> dict | None:
    """Our extra settings saved with the checkpoint in `directory` (its space's attributes,
    calibration, thresholds, ...), without loading the weights; None when `directory`
    holds no saved config (a checkpoint removed, or a model record without one)."""
    path = Path(directory) / CONFIG_NAME
    return json.loads(path.read_text())["pinlanding"] if path.is_file() else None


def load_encoder(directory: Path, compute: Compute = CPU_FP32) -> tuple[DualEncoder, dict]:
    """The encoder saved in `directory`, placed on `compute`, and our extra settings
    (calibration, thresholds)."""
    config = json.loads((directory / CONFIG_NAME).read_text())
    extra = config["pinlanding"]
    spec_fields = dict(extra["spec"])
    spec_fields["image_size"] = tuple(spec_fields["image_size"])
    spec = ModelSpec(**spec_fields)
    model = open_clip.create_model(f"local-dir:{directory}")
    model.eval()
    context = config["model_cfg"].get("text_cfg", {}).get("context_length", spec.context_length)
    encoder = DualEncoder(model=model, model_cfg=config["model_cfg"], spec=spec, tokenizer=clip_tokenizer(context), token_ids=_saved_token_ids(config))
    return encoder.place_on(compute, for_inference=True), extra


def attribute_table_phrases(attributes: pl.DataFrame) -> list[str]:
    return [attribute_phrase(k, v) for k, v in attributes.select("key", "value").iter_rows()]


@torch.inference_mode()
def embed_attributes(encoder: DualEncoder, attributes: pl.DataFrame) -> torch.Tensor:
    encoder.model.eval()
    return encoder.encode_attributes(encoder.tokenize(attribute_table_phrases(attributes))).cpu()


@dataclass(frozen=True)
class DistinctTitles:
    """Each distinct title tokenized once (the catalog has 44k products but 31k distinct
    titles), shortest first so batches trimmed after their longest title stay short."""

    tokens: torch.Tensor  # [U, context]
    rows: torch.Tensor  # [N]: the row of `tokens` of each title given


# titles -> their BPE tokens [N, context], as `clip_tokenizer` gives them (e.g. from a store)
TitleBPE = Callable[[list[str]], torch.Tensor]


def tokenize_titles(encoder: DualEncoder, titles: list[str], bpe: TitleBPE | None = None) -> DistinctTitles:
    unique, inverse = np.unique(np.asarray(titles, dtype=object).astype(str), return_inverse=True)
    order = np.argsort([len(t) for t in unique], kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    if not len(unique):
        tokens = torch.empty(0, 0, dtype=torch.long)
    else:
        ordered = unique[order].tolist()
        tokens = encoder.model_token_ids(bpe(ordered)) if bpe is not None else encoder.tokenize(ordered)
    return DistinctTitles(tokens, torch.from_numpy(rank[inverse.reshape(-1)]))


@torch.inference_mode()
def embed_titles(encoder: DualEncoder, titles: list[str], batch_size: int = 512, distinct: DistinctTitles | None = None) -> torch.Tensor:
    """Unit title embeddings [N, D], each distinct title encoded once (`distinct`: tokenized
    beforehand, e.g. in a background thread)."""
    distinct = distinct or tokenize_titles(encoder, titles)
    out = torch.empty(len(distinct.tokens), _embed_dim(encoder))
    for start in range(0, len(distinct.tokens), batch_size):
        out[start:start + batch_size] = encoder.encode_texts(distinct.tokens[start:start + batch_size]).cpu()
    return out[distinct.rows]


def _embed_dim(encoder: DualEncoder) -> int:
    return int(encoder.model_cfg.get("embed_dim") or encoder.model.visual.output_dim)


@torch.inference_mode()
def embed_products(
    encoder: DualEncoder,
    image_paths: list[str],
    titles: list[str],
    batch_size: int = 512,
    progress=None,
    images: Callable[[list[str]], torch.Tensor] | None = None,
    title_bpe: TitleBPE | None = None,
) -> torch.Tensor:
    """Product embeddings [N, D], images encoded in batches (progress(done, total) after
    each), titles once per distinct title. The next batch of images is decoded in a
    background thread while the current one is encoded (PIL releases the GIL while
    decoding), so decoding hides behind the model. `images` loads a batch's uint8 images
    (default: decode them; `model_inputs.DecodedImageStore.load` reads stored ones), and
    `title_bpe` the titles' BPE tokens (default: tokenize them; `model_inputs.TitleTokenStore.bpe`)."""
    encoder.model.eval()
    load = images or (lambda paths: load_images(paths, encoder.image_size))
    if not image_paths:
        return torch.empty(0, _embed_dim(encoder))
    batch_size = encoder.compute.inference_batch_size(batch_size)
    starts = list(range(0, len(image_paths), batch_size))
    image_chunks = []
    # Two helpers beside the towers: one loads the next batch of images, one tokenizes the
    # titles (pure Python: 0.8 s for the catalog's titles) while the image tower runs; on 2
    # cores they share the CPU with torch's threads, on more they run beside them.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="encode-inputs") as pool:
        distinct = pool.submit(tokenize_titles, encoder, titles, title_bpe) if encoder.spec.fuse_title else None
        pending = pool.submit(load, image_paths[: batch_size])
        for i, start in enumerate(starts):
            stop = min(start + batch_size, len(image_paths))
            images_u8 = pending.result()
            if i + 1 < len(starts):
                pending = pool.submit(load, image_paths[stop: stop + batch_size])
            image_chunks.append(encoder.encode_images(images_u8).cpu())
            if progress:
                progress(stop, len(image_paths))
        title_emb = embed_titles(encoder, titles, batch_size, distinct.result()) if distinct is not None else None
    image = torch.cat(image_chunks)
    return encoder.fuse(image, title_emb)
