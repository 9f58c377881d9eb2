"""The flowers64 data set for text-to-image: images, classes, splits, captions, the class-disjoint hold-out,
and the caption embeddings (computed once with the exported ONNX text encoder, cached under runs/).

Captions of an image = its real human captions from ``captions_reed.csv`` (right class, colour-matched image
inside the class; see the data README) + ``attr_per_image`` attribute captions written by ``captions.py``
from the class name and the colours measured on the image.
"""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from training import data
from training.t2i import captions as cap

log = logging.getLogger("training")

DEFAULT_DATA = "../shared/data/t2i/flowers64"
DEFAULT_ENCODER = "models/text-encoder.onnx"
N_CLASSES = 102


def heldout_classes(n: int, seed: int) -> list[int]:
    """``n`` class ids (1-102) held out of training entirely, drawn with ``seed``."""
    return sorted(int(c) + 1 for c in np.random.default_rng(seed).choice(N_CLASSES, size=n, replace=False))


@dataclass
class Flowers:
    root: Path
    names: list[str]              # image file names
    class_ids: np.ndarray         # [N] 1..102
    class_names: dict[int, str]
    split: np.ndarray             # [N] "train" / "valid" / "test"
    images: np.ndarray            # [N,64,64,3] uint8
    texts: list[str]              # all captions, flat
    text_image: np.ndarray        # [T] index of the caption's image
    text_is_attr: np.ndarray      # [T] True for generated attribute captions
    emb: np.ndarray | None = None  # [T,384] float32 caption embeddings

    def texts_of(self, i: int) -> np.ndarray:
        return np.flatnonzero(self.text_image == i)


def load_rgb64(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (64, 64):
            im = im.resize((64, 64), Image.BICUBIC)
        return np.asarray(im, dtype=np.uint8)


def load(root: str | Path = DEFAULT_DATA, attr_per_image: int = 3, seed: int = 0, limit: int | None = None,
         progress: bool = False) -> Flowers:
    """Read labels, images and captions (``limit``: only the first images, for tests)."""
    from tqdm import tqdm

    root = Path(root)
    with open(root / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:limit]
    names = [r["image"] for r in rows]
    index = {n: i for i, n in enumerate(names)}
    class_ids = np.array([int(r["class_id"]) for r in rows])
    class_names = {int(r["class_id"]): r["class_name"] for r in rows}
    images = np.stack([load_rgb64(root / "images" / n) for n in tqdm(names, disable=not progress, desc="images")])
    reed: list[list[str]] = [[] for _ in names]
    if (root / "captions_reed.csv").exists():
        with open(root / "captions_reed.csv", newline="") as f:
            for r in csv.DictReader(f):
                i = index.get(r["image"])
                if i is not None:
                    reed[i].append(" ".join(r["caption"].split()))
    texts, text_image, is_attr = [], [], []
    for i in range(len(names)):
        attr = cap.captions_for(images[i], class_names[class_ids[i]], attr_per_image, seed, i) if attr_per_image else []
        for t, a in [(t, False) for t in reed[i]] + [(t, True) for t in attr]:
            texts.append(t)
            text_image.append(i)
            is_attr.append(a)
    return Flowers(root, names, class_ids, class_names, np.array([r["split"] for r in rows]), images, texts,
                   np.array(text_image, dtype=np.int64), np.array(is_attr))


def embed_cached(texts: list[str], encoder: str | Path, cache_dir: str | Path = "runs/t2i/cache", threads: int = 1) -> np.ndarray:
    """Embeddings of ``texts`` by the ONNX encoder. Every text embedded is kept in a cache file of that encoder
    (keyed by its sha256), so only texts not seen before are run through it."""
    from training.export import sha256_file
    from training.t2i.encoder_export import DIM, OnnxEncoder

    path = Path(cache_dir) / f"emb-{sha256_file(Path(encoder))[:16]}.npz"
    known: dict[str, int] = {}
    vecs = np.zeros((0, DIM), np.float32)
    if path.exists():
        z = np.load(path, allow_pickle=False)
        known = {t: i for i, t in enumerate(z["texts"].tolist())}
        vecs = z["emb"]
    missing = sorted({t for t in texts if t not in known})
    if missing:
        log.info("embedding %d new captions with %s (cache %s)", len(missing), encoder, path)
        new = OnnxEncoder(encoder, threads=threads)(missing, batch=128)
        for t in missing:
            known[t] = len(known)
        vecs = np.concatenate([vecs, new])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, texts=np.array(list(known), dtype=str), emb=vecs)
        tmp.replace(path)
    return vecs[[known[t] for t in texts]]


def to_tensor(images: np.ndarray) -> np.ndarray:
    """uint8 [N,H,W,3] -> float32 [N,3,H,W] in [-1,1] (the generator's tanh range)."""
    return images.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0


to_uint8 = data.to_uint8_batch  # float [N,3,H,W] in [0,1] -> uint8 [N,H,W,3]
