"""Generate the small sample catalog in `data/sample_catalog` (generic layout).

The project must run on a fresh machine with no other data, so it draws its own products:
a silhouette per product type in the product's colour on a white background (60x80, like the
shared dataset), with a title, a merchant category (coarse, like a shop's menu: "Topwear",
"Shoes"), a description, a shard and ground-truth `label_<key>` columns. Deterministic: the
same seed writes byte-identical files.

    python -m pinlanding_assets.data_tools.sample_catalog data/sample_catalog [--count 360]
"""

from __future__ import annotations

import argparse
import csv
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

COLORS = {
    "black": (20, 20, 20),
    "white": (236, 236, 228),
    "navy blue": (25, 35, 90),
    "red": (200, 30, 35),
    "green": (40, 140, 60),
    "blue": (40, 90, 210),
    "grey": (128, 128, 128),
    "pink": (240, 130, 170),
    "yellow": (235, 200, 40),
    "brown": (110, 70, 35),
}


@dataclass(frozen=True)
class ProductKind:
    product_type: str  # label value, Kaggle style (plural)
    title_noun: str  # how a title names it
    category: str  # the merchant's coarse category
    shard: str
    genders: tuple[str, ...]
    occasions: tuple[str, ...]
    shape: list[tuple[float, float]]  # polygon in unit coordinates (x, y)


KINDS = [
    ProductKind("Tshirts", "Tshirt", "Topwear", "apparel", ("men", "women"), ("casual", "sports"),
                [(.2, .15), (.4, .1), (.6, .1), (.8, .15), (.95, .35), (.8, .4), (.78, .9), (.22, .9), (.2, .4), (.05, .35)]),
    ProductKind("Shirts", "Shirt", "Topwear", "apparel", ("men",), ("casual", "formal"),
                [(.25, .1), (.5, .18), (.75, .1), (.95, .5), (.82, .55), (.8, .95), (.2, .95), (.18, .55), (.05, .5)]),
    ProductKind("Jeans", "Jeans", "Bottomwear", "apparel", ("men", "women"), ("casual",),
                [(.2, .05), (.8, .05), (.85, .95), (.6, .95), (.5, .35), (.4, .95), (.15, .95)]),
    ProductKind("Dresses", "Dress", "Dresses", "apparel", ("women",), ("casual", "party"),
                [(.38, .05), (.62, .05), (.65, .35), (.9, .95), (.1, .95), (.35, .35)]),
    ProductKind("Casual Shoes", "Casual Shoe", "Shoes", "footwear", ("men", "women"), ("casual",),
                [(.05, .55), (.45, .5), (.6, .35), (.9, .4), (.95, .7), (.05, .72)]),
    ProductKind("Sports Shoes", "Sports Shoe", "Shoes", "footwear", ("men", "women"), ("sports",),
                [(.05, .6), (.35, .45), (.55, .5), (.95, .55), (.95, .75), (.05, .75)]),
    ProductKind("Handbags", "Handbag", "Bags", "accessories", ("women",), ("casual", "formal"),
                [(.15, .4), (.3, .4), (.35, .2), (.65, .2), (.7, .4), (.85, .4), (.9, .9), (.1, .9)]),
    ProductKind("Watches", "Watch", "Watches", "accessories", ("men", "women"), ("casual", "formal"),
                [(.4, .05), (.6, .05), (.6, .3), (.75, .4), (.75, .6), (.6, .7), (.6, .95), (.4, .95), (.4, .7), (.25, .6), (.25, .4), (.4, .3)]),
    ProductKind("Backpacks", "Backpack", "Bags", "accessories", ("unisex",), ("casual",),
                [(.25, .15), (.75, .15), (.85, .3), (.85, .92), (.15, .92), (.15, .3)]),
]
BRANDS = ["Urban Loom", "Northfold", "Kestrel", "Madder & Co", "Bluepine", "Oakline"]
SEASONS = ["summer", "winter", "fall", "spring"]
PATTERNS = ["", "", "", "striped", "checked", "printed"]


def draw_product(kind: ProductKind, rgb: tuple[int, int, int], rng: random.Random) -> Image.Image:
    width, height = 60, 80
    img = Image.new("RGB", (width, height), (255, 255, 255))
    scale = rng.uniform(0.8, 1.0)
    dx, dy = rng.uniform(-4, 4), rng.uniform(-4, 4)
    points = [
        (width / 2 + (x - 0.5) * width * scale + dx, height / 2 + (y - 0.5) * height * scale + dy)
        for x, y in kind.shape
    ]
    jitter = tuple(max(0, min(255, c + rng.randint(-18, 18))) for c in rgb)
    outline = (90, 90, 90) if sum(rgb) > 600 else None  # white products need an edge to be seen
    ImageDraw.Draw(img).polygon(points, fill=jitter, outline=outline)
    return img


def generate_sample_catalog(out_dir: Path, count: int = 360, seed: int = 7) -> Path:
    rng = random.Random(seed)
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(count):
        kind = KINDS[index % len(KINDS)]
        color = rng.choice(list(COLORS))
        gender = rng.choice(kind.genders)
        occasion = rng.choice(kind.occasions)
        pattern = rng.choice(PATTERNS) if kind.shard == "apparel" else ""
        product_id = f"s{index:04d}"
        title_words = [rng.choice(BRANDS), gender.title(), color.title(), pattern.title(), kind.title_noun]
        draw_product(kind, COLORS[color], rng).save(images / f"{product_id}.jpg", quality=90)
        rows.append(
            {
                "id": product_id,
                "title": " ".join(w for w in title_words if w),
                "image": f"images/{product_id}.jpg",
                "shard": kind.shard,
                "category": kind.category,
                "description": f"{occasion} {kind.product_type.lower()} for {gender}",
                "label_product_type": kind.product_type,
                "label_color": color,
                "label_gender": gender,
                "label_occasion": occasion,
                "label_season": rng.choice(SEASONS),
            }
        )
    table = out_dir / "products.csv"
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--count", type=int, default=360)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    table = generate_sample_catalog(args.out_dir, args.count, args.seed)
    print(f"wrote {args.count} products to {table}")


if __name__ == "__main__":
    main()
