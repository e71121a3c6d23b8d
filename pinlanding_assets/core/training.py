"""Contrastive training of the dual encoder on the labeled sample.

Loss (ours): for each attribute key, a softmax over that key's vocabulary values of the
product-attribute similarities, with a soft target spread over the product's true values
of the key. Classes are the deduplicated vocabulary, so thousands of products sharing
"color: black" are all positives of one row instead of false negatives of each other, as they
would be in the plain in-batch CLIP loss.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import torch

from .clip_model import DualEncoder, attribute_table_phrases, load_images
from .evaluation import top1_accuracy_per_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 4  # the full catalog's validation top-1 gains < 0.005 after epoch 4 (8 epochs: same held-out top-1)
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    validation_share: float = 0.15
    # Share of the labeled sample held out of training and calibration: the silver test set
    # that gates a model when the catalog has no labels of its own (0 when it has).
    test_share: float = 0.0
    patience: int = 2
    seed: int = 0
    # Small samples get more epochs, so the towers see enough updates; 100 keeps the sample
    # catalog's training step short (a full catalog's labeled sample passes it in 2 epochs).
    min_steps: int = 100
    augment: bool = True  # random horizontal flips of the training images
    patience_min_steps: int = 50  # tiny samples (1 step/epoch) are not stopped before this
    # Share of training products whose title is dropped from the product tower in a step.
    # Most titles name the colour and type, so without it the image tower never has to
    # learn them and products whose title is silent get poor scores (colour 34% top-1).
    title_dropout: float = 0.3


# The value of a key a product does not have ("pattern: (none)" for a plain shirt). Keys
# that only some products carry (pattern, material) need it: without it the per-key softmax
# would force every product to take one of the key's values. Never assigned, never a page.
ABSENT = "(none)"


def add_absent_values(attributes: pl.DataFrame, labels: pl.DataFrame, product_ids: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Add (key, ABSENT) to the attributes and to the labels of products lacking the key,
    for every key that some labeled products lack."""
    products = pl.DataFrame({"product_id": product_ids}, schema={"product_id": pl.String})
    extra_attrs, extra_labels = [], []
    for key in attributes.get_column("key").unique().sort().to_list():
        have = labels.filter(pl.col("key") == key).select("product_id").unique()
        lacking = products.join(have, on="product_id", how="anti")
        if lacking.height:
            extra_attrs.append({"key": key, "value": ABSENT, "frequency": lacking.height})
            extra_labels.append(lacking.with_columns(pl.lit(key).alias("key"), pl.lit(ABSENT).alias("value")))
    if not extra_attrs:
        return attributes, labels
    attrs = pl.concat([attributes.select("key", "value", "frequency"), pl.DataFrame(extra_attrs, schema=attributes.select("key", "value", "frequency").schema)])
    return attrs, pl.concat([labels.select("product_id", "key", "value"), *extra_labels])


@dataclass
class AttributeSpace:
    """The curated attributes in a fixed order, grouped by key (contiguous slices)."""

    attributes: pl.DataFrame  # key, value, frequency; sorted by key, value

    def __post_init__(self) -> None:
        self.attributes = self.attributes.sort("key", "value")
        self.index = {(k, v): i for i, (k, v) in enumerate(self.attributes.select("key", "value").iter_rows())}
        self.key_slices: dict[str, slice] = {}
        keys = self.attributes.get_column("key").to_list()
        for i, key in enumerate(keys):
            start = self.key_slices[key].start if key in self.key_slices else i
            self.key_slices[key] = slice(start, i + 1)

    def __len__(self) -> int:
        return self.attributes.height

    @property
    def assignable(self) -> np.ndarray:
        """False for the ABSENT pseudo-values."""
        return (self.attributes.get_column("value") != ABSENT).to_numpy()

    def multi_hot(self, product_ids: list[str], labels: pl.DataFrame) -> np.ndarray:
        """[N, A] truth matrix from (product_id, key, value) rows (unknown attributes ignored)."""
        row_of = {pid: i for i, pid in enumerate(product_ids)}
        truth = np.zeros((len(product_ids), len(self)), dtype=bool)
        for pid, key, value in labels.select("product_id", "key", "value").iter_rows():
            col = self.index.get((key, value))
            if col is not None and pid in row_of:
                truth[row_of[pid], col] = True
        return truth

    def log_prior(self) -> np.ndarray:
        freq = self.attributes.get_column("frequency").to_numpy().astype(np.float64) + 1.0
        out = np.empty_like(freq)
        for sl in self.key_slices.values():
            out[sl] = np.log(freq[sl] / freq[sl].sum())
        return out


@dataclass
class ProductBatchData:
    product_ids: list[str]
    images: torch.Tensor  # uint8 [N, 3, H, W]
    title_tokens: torch.Tensor  # [N, context]
    truth: np.ndarray  # bool [N, A]
    texts: list[dict]  # title/description/category/pixel colour per product, for the evidence


def prepare_products(encoder: DualEncoder, products: pl.DataFrame, labels: pl.DataFrame, space: AttributeSpace) -> ProductBatchData:
    ids = products.get_column("product_id").to_list()
    text_columns = [c for c in ("title", "description", "category", "pixel_color", "pixel_weight") if c in products.columns]
    return ProductBatchData(
        product_ids=ids,
        images=load_images(products.get_column("image_path").to_list(), encoder.image_size),
        title_tokens=encoder.tokenize(products.get_column("title").to_list()),
        truth=space.multi_hot(ids, labels),
        texts=products.select(text_columns).to_dicts(),
    )


def _split_score(product_id: str, seed: int) -> float:
    return int.from_bytes(hashlib.blake2b(f"split:{seed}:{product_id}".encode(), digest_size=8).digest(), "big") / 2**64


def sample_role(product_id: str, validation_share: float, test_share: float, seed: int) -> str:
    """"train", "validation" or "test" for one labeled product: a seeded hash decides, so a
    product keeps its role when others are added. The hash is salted with "split:": the
    labeled sample itself was drawn as the products with the smallest
    `blake2b(f"{seed}:{pid}")` (extraction.select_sample), so the unsalted hash would put
    most of the sample (every product whose hash is below the share) in validation."""
    score = _split_score(product_id, seed)
    if score < validation_share:
        return "validation"
    return "test" if score < validation_share + test_share else "train"


def split_sample(product_ids: list[str], validation_share: float, seed: int, test_share: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of the train, validation and test (silver held-out) products (`sample_role`)."""
    roles = np.array([sample_role(pid, validation_share, test_share, seed) for pid in product_ids], dtype=object)
    return np.flatnonzero(roles == "train"), np.flatnonzero(roles == "validation"), np.flatnonzero(roles == "test")


def per_key_loss(product_emb: torch.Tensor, attribute_emb: torch.Tensor, scale: torch.Tensor, truth: torch.Tensor, key_slices: dict[str, slice]) -> torch.Tensor:
    logits = scale * product_emb @ attribute_emb.T
    losses = []
    for sl in key_slices.values():
        target = truth[:, sl].float()
        has_value = target.sum(dim=1) > 0
        if not has_value.any():
            continue
        target = target[has_value] / target[has_value].sum(dim=1, keepdim=True)
        log_probs = torch.log_softmax(logits[has_value, sl], dim=1)
        losses.append(-(target * log_probs).sum(dim=1).mean())
    return torch.stack(losses).mean() if losses else logits.sum() * 0.0


@torch.no_grad()
def similarities(encoder: DualEncoder, data: ProductBatchData, attribute_tokens: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    encoder.model.eval()
    attr = encoder.encode_attributes(attribute_tokens)
    batch_size = encoder.compute.inference_batch_size(batch_size)
    out = []
    for start in range(0, len(data.product_ids), batch_size):
        sl = slice(start, start + batch_size)
        prod = encoder.encode_products(data.images[sl], data.title_tokens[sl] if encoder.spec.fuse_title else None)
        out.append((prod @ attr.T).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, attr.shape[0]), dtype=np.float32)


def mean_top1_accuracy(sim: np.ndarray, truth: np.ndarray, key_slices: dict[str, slice]) -> float:
    """Top-1 accuracy averaged over the keys that have labeled products."""
    per_key = top1_accuracy_per_key(sim, truth, key_slices)
    return float(np.mean(list(per_key.values()))) if per_key else 0.0


def augment_images(images_u8: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip a random half of the batch left-right: no fashion attribute we learn (type,
    colour, gender, occasion, season) depends on the side a product faces."""
    flip = torch.rand(images_u8.shape[0], generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images_u8.flip(-1), images_u8)


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_share: float = 0.1) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = max(1, int(total_steps * warmup_share))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class TrainingReport:
    epochs_run: int
    best_epoch: int
    best_validation_accuracy: float
    seconds: float
    history: list[dict] = field(default_factory=list)
    steps: int = 0  # optimizer steps taken
    validation_products: int = 0  # products encoded per validation pass (one per epoch run)


def train_encoder(encoder: DualEncoder, train: ProductBatchData, validation: ProductBatchData, space: AttributeSpace, config: TrainingConfig) -> TrainingReport:
    """Train in place; the weights of the best validation epoch are kept (early stopping)."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = encoder.model
    attribute_tokens = encoder.tokenize(attribute_table_phrases(space.attributes))
    truth = torch.from_numpy(train.truth)
    scaler = torch.amp.GradScaler(encoder.compute.device.type, enabled=encoder.compute.needs_grad_scaler())
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(train.product_ids) / config.batch_size))
    epochs = max(config.epochs, math.ceil(config.min_steps / steps_per_epoch))
    schedule = warmup_cosine(optimizer, total_steps=steps_per_epoch * epochs)
    best = (-1.0, 0, copy.deepcopy(model.state_dict()))
    history: list[dict] = []
    started = time.perf_counter()
    epochs_run = steps_taken = 0
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(train.product_ids), generator=generator)
        losses = []
        for step in range(steps_per_epoch):
            idx = order[step * config.batch_size:(step + 1) * config.batch_size]
            if len(idx) == 0:
                continue
            images = augment_images(train.images[idx], generator) if config.augment else train.images[idx]
            keep_title = (torch.rand(len(idx), generator=generator) >= config.title_dropout).float()
            products = encoder.encode_products(images, train.title_tokens[idx] if encoder.spec.fuse_title else None, keep_title)
            attributes = encoder.encode_attributes(attribute_tokens)
            loss = per_key_loss(products, attributes, encoder.logit_scale, encoder.compute.to_device(truth[idx]), space.key_slices)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            losses.append(float(loss.detach()))
            steps_taken += 1
        epochs_run = epoch
        val_acc = mean_top1_accuracy(similarities(encoder, validation, attribute_tokens), validation.truth, space.key_slices)
        history.append({"epoch": epoch, "loss": float(np.mean(losses)) if losses else 0.0, "validation_accuracy": val_acc})
        log.info("epoch %d/%d loss %.4f validation top-1 %.4f (%.0fs)", epoch, epochs, history[-1]["loss"], val_acc, time.perf_counter() - started)
        if val_acc > best[0]:
            best = (val_acc, epoch, copy.deepcopy(model.state_dict()))
        elif (epoch - best[1]) * steps_per_epoch >= max(config.patience * steps_per_epoch, config.patience_min_steps):
            log.info("early stopping: no validation gain since epoch %d", best[1])
            break
    model.load_state_dict(best[2])
    model.eval()
    return TrainingReport(epochs_run, best[1], best[0], time.perf_counter() - started, history, steps_taken, len(validation.product_ids))
