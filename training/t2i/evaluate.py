"""Evaluate an exported text-to-image generator (the ONNX file itself), with two baselines in the same run.

On one human caption of each test image of the SEEN classes (seeded), the generator makes one image (seed =
the item's index) and the 102-class flower classifier (classifier.py) judges it:
  top-1 / top-5     the classifier names the class of the image the caption was written for
  Frechet (FD)      between classifier features of the generated images and of the real test images
  joint FD (FJD)    Frechet Joint Distance (DeVries et al. 2019): the same on (image features, caption
                    embedding) pairs, so an image that does not fit its caption costs even if it is a fine flower
Baselines, same captions, same seeds, same noise:
  shuffled          each item's embedding is replaced by that of a caption from ANOTHER class (the pairs are
                    scored against the item's own class and caption): a generator that ignores the text
  mean-text         every item gets the mean caption embedding of the training captions: "noise only", the
                    generator with the text held fixed, so only z varies
Colour: human captions naming exactly one of red, yellow, white, purple, pink, orange as "<colour> petals"
(seen classes: test split; held-out classes: all their images, never trained on); the dominant colour of the
generated flower (captions.dominant_colour, the same measure as the attribute captions) must be the named one.
The real image a caption belongs to is scored the same way, as a reference.
Diversity: mean RMS pixel distance between the images of distinct seeds for one caption, next to the same
distance between real images of one class.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from training.t2i import captions as cap
from training.t2i import data as t2i_data

COLOUR_WORDS = ("red", "yellow", "white", "purple", "pink", "orange")
ANY_COLOUR = re.compile(r"\b(" + "|".join(COLOUR_WORDS) + r")\b")


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to the rows of a and b (float64, exact via eigh)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(s1)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = r1 @ s2 @ r1
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * cross)


class OnnxGenerator:
    """An exported generator run by ONNX Runtime, with its noise drawn as the service draws it: z from
    ``default_rng(seed)``, each detail level's map (LAPGAN's ``noise_16`` ...) from ``default_rng([detail_seed, size])``."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        inputs = [i.name for i in self.session.get_inputs()]
        self.z_dim = int(self.session.get_inputs()[inputs.index("noise")].shape[1])
        self.levels = sorted(int(n.split("_")[1]) for n in inputs if n.startswith("noise_"))  # detail sizes, coarse to fine

    def run(self, emb: np.ndarray, z: np.ndarray, rng: np.random.Generator | None = None,
            detail_seeds: list[int] | None = None) -> np.ndarray:
        """float32 images [N,3,64,64] in [0,1]; detail maps from ``rng`` or from ``detail_seeds``."""
        feed = {"text_embedding": emb.astype(np.float32), "noise": z.astype(np.float32)}
        for s in self.levels:
            maps = (rng.standard_normal((len(z), 1, s, s)) if rng is not None
                    else np.stack([np.random.default_rng([d, s]).standard_normal((1, s, s)) for d in detail_seeds]))
            feed[f"noise_{s}"] = maps.astype(np.float32)
        return self.session.run(["image"], feed)[0]

    def __call__(self, emb: np.ndarray, seeds: list[int] | np.ndarray, batch: int = 128,
                 detail_seeds: list[int] | np.ndarray | None = None) -> np.ndarray:
        """uint8 images [N,64,64,3] for embeddings [N,384] and one seed (and detail seed, default the seed) each."""
        seeds = [int(s) for s in seeds]
        details = seeds if detail_seeds is None else [int(d) for d in detail_seeds]
        out = []
        for i in range(0, len(emb), batch):
            z = np.stack([np.random.default_rng(s).standard_normal(self.z_dim) for s in seeds[i : i + batch]])
            out.append(t2i_data.to_uint8(self.run(emb[i : i + batch], z, detail_seeds=details[i : i + batch])))
        return np.concatenate(out)


def colour_of_caption(text: str) -> str | None:
    """The petal colour a caption names, if it names exactly one of COLOUR_WORDS, as '<colour> petals'."""
    named = set(ANY_COLOUR.findall(text))
    if len(named) != 1:
        return None
    c = named.pop()
    return c if re.search(rf"\b{c} petals?\b", text) else None


def colour_items(ds: t2i_data.Flowers, images: np.ndarray, per_colour: int, rng: np.random.Generator) -> list[tuple[int, str]]:
    """Up to ``per_colour`` (caption index, colour) per colour, from human captions of ``images``."""
    keep = np.isin(ds.text_image, images) & ~ds.text_is_attr
    by_colour: dict[str, list[int]] = {c: [] for c in COLOUR_WORDS}
    for t in np.flatnonzero(keep):
        c = colour_of_caption(ds.texts[t])
        if c:
            by_colour[c].append(int(t))
    items = []
    for c in COLOUR_WORDS:
        pick = rng.permutation(by_colour[c])[:per_colour]
        items += [(int(t), c) for t in pick]
    return items


def colour_accuracy(gen: OnnxGenerator, ds: t2i_data.Flowers, items: list[tuple[int, str]], seed0: int) -> dict:
    texts = np.array([t for t, _ in items])
    want = np.array([c for _, c in items])
    fake = gen(ds.emb[texts], seed0 + np.arange(len(texts)))
    got = np.array([cap.dominant_colour(im) for im in fake])
    real = np.array([cap.dominant_colour(ds.images[ds.text_image[t]]) for t in texts])
    per = {c: {"n": int((want == c).sum()), "generated": round(float((got[want == c] == c).mean()), 3) if (want == c).any() else None}
           for c in COLOUR_WORDS}
    return {"captions": int(len(texts)), "accuracy": round(float((got == want).mean()), 4),
            "real_image_agreement": round(float((real == want).mean()), 4), "per_colour": per}


def evaluate(model: str | Path, classifier: str | Path, data_dir: str = t2i_data.DEFAULT_DATA,
             encoder: str = t2i_data.DEFAULT_ENCODER, cache: str = "runs/t2i/cache", heldout: list[int] | None = None,
             seed: int = 0, attr_per_image: int = 3, colour_per_class: int = 60, diversity_captions: int = 50,
             diversity_seeds: int = 8, grid: str | Path | None = None, limit: int | None = None, threads: int = 1) -> dict:
    import torch

    from training.t2i.classifier import load_classifier, predict, topk_accuracy
    from training.t2i.train import T2ITrainConfig

    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    ds = t2i_data.load(data_dir, attr_per_image, T2ITrainConfig.seed, limit)
    ds.emb = t2i_data.embed_cached(ds.texts, encoder, cache)
    heldout = t2i_data.heldout_classes(20, 0) if heldout is None else heldout
    seen = ~np.isin(ds.class_ids, heldout)
    test = np.flatnonzero((ds.split == "test") & seen)
    human = ~ds.text_is_attr
    gen = OnnxGenerator(model, threads)
    clf, clf_result = load_classifier(classifier)

    # one human caption per seen-class test image
    item_text = np.array([rng.choice(np.flatnonzero((ds.text_image == i) & human)) for i in test])
    labels = ds.class_ids[test]
    seeds = np.arange(len(test))
    other = np.empty_like(item_text)  # shuffled: a caption of another class, for each item
    perm = rng.permutation(len(test))
    for k in range(len(test)):
        j = perm[k]
        while labels[j] == labels[k]:
            j = int(rng.integers(len(test)))
        other[k] = item_text[j]
    train_texts = np.isin(ds.text_image, np.flatnonzero((ds.split == "train") & seen))
    mean_emb = ds.emb[train_texts].mean(0)
    conditions = {
        "model": ds.emb[item_text],
        "shuffled": ds.emb[other],
        "mean-text": np.repeat(mean_emb[None], len(test), 0),
    }
    real_logits, real_feat = predict(clf, ds.images[test])
    # text side of the joint embedding: PCA (fit on the real pairs' captions) to 32 dims, scaled like DeVries et al.
    t_real = ds.emb[item_text]
    t_mu = t_real.mean(0)
    _, _, vt = np.linalg.svd(t_real - t_mu, full_matrices=False)
    proj = lambda e: (e - t_mu) @ vt[:32].T  # noqa: E731
    alpha = np.linalg.norm(real_feat, axis=1).mean() / np.linalg.norm(proj(t_real), axis=1).mean()
    joint_real = np.concatenate([real_feat, alpha * proj(t_real)], 1)
    table = {}
    for name, emb in conditions.items():
        fake = gen(emb, seeds)
        logits, feat = predict(clf, fake)
        joint = np.concatenate([feat, alpha * proj(t_real)], 1)  # paired with the item's own caption
        table[name] = {"top1": round(topk_accuracy(logits, labels, 1), 4), "top5": round(topk_accuracy(logits, labels, 5), 4),
                       "frechet": round(frechet(feat, real_feat), 3), "joint_frechet": round(frechet(joint, joint_real), 3)}
    table["real test images"] = {"top1": round(topk_accuracy(real_logits, labels, 1), 4),
                                 "top5": round(topk_accuracy(real_logits, labels, 5), 4), "frechet": 0.0, "joint_frechet": 0.0}

    held_images = np.flatnonzero(~seen)
    colour = {
        "seen (test split)": colour_accuracy(gen, ds, colour_items(ds, test, colour_per_class, rng), 10_000),
        "held-out classes": colour_accuracy(gen, ds, colour_items(ds, held_images, colour_per_class, rng), 20_000),
    }

    div_items = rng.choice(len(test), size=min(diversity_captions, len(test)), replace=False)
    gen_d, real_d = [], []
    for k in div_items:
        imgs = gen(np.repeat(ds.emb[item_text[k]][None], diversity_seeds, 0), np.arange(diversity_seeds) + 30_000).astype(np.float32) / 255
        gen_d.append(_mean_pairwise(imgs))
        same = np.flatnonzero(ds.class_ids == labels[k])
        pick = rng.choice(same, size=min(diversity_seeds, len(same)), replace=False)
        real_d.append(_mean_pairwise(ds.images[pick].astype(np.float32) / 255))
    diversity = {"captions": int(len(div_items)), "seeds": diversity_seeds,
                 "generated_same_caption": round(float(np.mean(gen_d)), 4), "min_over_captions": round(float(np.min(gen_d)), 4),
                 "real_same_class": round(float(np.mean(real_d)), 4),
                 "metric": "mean RMS distance between two images, pixels in [0,1]"}
    if gen.levels:
        diversity["levels"] = level_spread(gen, ds.emb[item_text[div_items]], diversity_seeds)
    result = {
        "set": {"items": int(len(test)), "what": "one human caption (captions_reed.csv) per test-split image of the 82 seen classes, seeded",
                "seed": seed, "chance_top1": round(1 / t2i_data.N_CLASSES, 4), "chance_top5": round(5 / t2i_data.N_CLASSES, 4)},
        "classifier": {k: clf_result[k] for k in ("test_top1", "test_top5", "params", "epochs", "command") if k in clf_result},
        "table": table,
        "colour": colour,
        "diversity": diversity,
        "heldout_classes": heldout,
        "baselines": {
            "shuffled": "same items and seeds, each caption embedding swapped for that of a caption of another class",
            "mean-text": ("'noise only': every item gets the mean embedding of the training captions, so only the noise "
                          "varies (the generator has no text-free mode; this is the closest honest stand-in)"),
        },
    }
    if grid:
        result["grid"] = str(write_grid(gen, ds, heldout, grid, encoder=encoder, cache=cache))
        if gen.levels:
            varied = Path(grid).with_name(Path(grid).stem + "-details.png")
            result["detail_grid"] = str(write_grid(gen, ds, heldout, varied, encoder=encoder, cache=cache, details=True))
    return result


def level_spread(gen: OnnxGenerator, emb: np.ndarray, draws: int) -> dict:
    """Coarse-to-fine variations: for each caption, ``draws`` images that differ only in the noise of one level
    (the others fixed), as mean RMS pixel distance between two of them; "coarse (8 px)" redraws z, "detail"
    all finer maps at once (the service's ``detail_seed``)."""
    out: dict[str, list[float]] = {"coarse (8 px)": [], "detail (all finer levels)": [], **{f"{s} px only": [] for s in gen.levels}}
    for k, e in enumerate(emb):
        base = 40_000 + k * 100
        rows = np.repeat(e[None], draws, 0)
        out["coarse (8 px)"].append(_mean_pairwise(gen(rows, base + np.arange(draws), detail_seeds=[base] * draws) / 255.0))
        out["detail (all finer levels)"].append(_mean_pairwise(gen(rows, [base] * draws, detail_seeds=base + np.arange(draws)) / 255.0))
        z = np.repeat(np.random.default_rng(base).standard_normal(gen.z_dim)[None], draws, 0)
        for s in gen.levels:
            fixed = {t: np.repeat(np.random.default_rng([base, t]).standard_normal((1, 1, t, t)), draws, 0) for t in gen.levels}
            fixed[s] = np.stack([np.random.default_rng([base + 1 + i, s]).standard_normal((1, s, s)) for i in range(draws)])
            feed = {"text_embedding": rows.astype(np.float32), "noise": z.astype(np.float32),
                    **{f"noise_{t}": m.astype(np.float32) for t, m in fixed.items()}}
            out[f"{s} px only"].append(_mean_pairwise(gen.session.run(["image"], feed)[0]))
    return {k: round(float(np.mean(v)), 4) for k, v in out.items()}


def _mean_pairwise(imgs: np.ndarray) -> float:
    n = len(imgs)
    flat = imgs.reshape(n, -1)
    d = [np.sqrt(((flat[i] - flat[j]) ** 2).mean()) for i in range(n) for j in range(i + 1, n)]
    return float(np.mean(d))


def write_grid(gen: OnnxGenerator, ds: t2i_data.Flowers, heldout: list[int], path: str | Path, seeds: int = 8,
               encoder: str = t2i_data.DEFAULT_ENCODER, cache: str = "runs/t2i/cache", details: bool = False) -> Path:
    """Captions (rows, written on the left) x seeds (columns), images enlarged 2x (nearest). Six fixed captions,
    then two naming held-out classes (never trained on). ``details``: every column of a row has seed 0 and detail
    seeds 0, 1, ...: detail draws of one coarse image (a generator with detail levels)."""
    from PIL import Image, ImageDraw

    from training.t2i.train import GRID_CAPTIONS

    held = [c for c in heldout if c in ds.class_names][:2]
    rows = GRID_CAPTIONS[:6] + [f"a {ds.class_names[c]} with {w} petals" for c, w in zip(held, ("yellow", "pink"))]
    emb = t2i_data.embed_cached(rows, encoder, cache)
    cell, label_w, pad = 128, 360, 4
    sheet = Image.new("RGB", (label_w + seeds * (cell + pad), len(rows) * (cell + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (text, e) in enumerate(zip(rows, emb)):
        imgs = (gen(np.repeat(e[None], seeds, 0), [0] * seeds, detail_seeds=list(range(seeds))) if details
                else gen(np.repeat(e[None], seeds, 0), list(range(seeds))))
        y = r * (cell + pad)
        words, line, lines = text.split(), "", []
        for w in words:
            if len(line) + len(w) > 42:
                lines.append(line)
                line = ""
            line = f"{line} {w}".strip()
        lines.append(line)
        tag = " (held-out class)" if r >= 6 else ""
        draw.multiline_text((6, y + 8), "\n".join(lines) + tag, fill="black", spacing=3)
        for c, im in enumerate(imgs):
            sheet.paste(Image.fromarray(im).resize((cell, cell), Image.NEAREST), (label_w + c * (cell + pad), y))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def format_table(result: dict) -> str:
    s = result["set"]
    lines = [f"{s['items']} items: {s['what']}; chance top-1 {s['chance_top1']:.3f}, top-5 {s['chance_top5']:.3f}",
             f"classifier on real test images: top-1 {result['classifier']['test_top1']:.3f}, top-5 {result['classifier']['test_top5']:.3f}",
             "", "| images from | top-1 | top-5 | Frechet | joint Frechet |", "|---|---|---|---|---|"]
    for name, m in result["table"].items():
        lines.append(f"| {name} | {m['top1']:.3f} | {m['top5']:.3f} | {m['frechet']:.2f} | {m['joint_frechet']:.2f} |")
    lines += ["", "| colour check | captions | generated matches | real image matches |", "|---|---|---|---|"]
    for name, c in result["colour"].items():
        lines.append(f"| {name} | {c['captions']} | {c['accuracy']:.3f} | {c['real_image_agreement']:.3f} |")
    for name, c in result["colour"].items():
        lines.append(f"  {name} per colour: " + ", ".join(f"{k} {v['generated']} (n={v['n']})" for k, v in c["per_colour"].items()))
    d = result["diversity"]
    lines += ["", f"diversity ({d['metric']}): generated, {d['seeds']} seeds per caption, {d['captions']} captions: "
                  f"{d['generated_same_caption']:.4f} (min {d['min_over_captions']:.4f}); real images of one class: {d['real_same_class']:.4f}"]
    if "levels" in d:
        lines.append("variation spread by level (same metric, one level's noise redrawn): "
                     + ", ".join(f"{k} {v:.4f}" for k, v in d["levels"].items()))
    if "grid" in result:
        lines.append(f"grid: {result['grid']}")
    return "\n".join(lines)


def encoder_class_retrieval(encoder: str | Path, data_dir: str = t2i_data.DEFAULT_DATA, cache: str = "runs/t2i/cache") -> dict:
    """How much of a flower's class the text encoder's embedding of a human caption carries, with no training:
    each test-split caption is matched by cosine to the mean embedding of each class's train-split captions.
    The text encoder's card keeps it as its ``metrics`` (t2i-evaluate-encoder)."""
    from training.t2i.classifier import topk_accuracy

    ds = t2i_data.load(data_dir, attr_per_image=0)
    emb = t2i_data.embed_cached(ds.texts, encoder, cache)
    cls, split = ds.class_ids[ds.text_image], ds.split[ds.text_image]
    classes = np.unique(cls)
    centroids = np.stack([emb[(cls == c) & (split == "train")].mean(0) for c in classes])
    test = split == "test"
    logits = emb[test] @ (centroids / np.linalg.norm(centroids, axis=1, keepdims=True)).T
    labels = np.searchsorted(classes, cls[test]) + 1  # topk_accuracy's ids: column + 1
    return {"captions": int(test.sum()), "classes": len(classes), "method": "nearest class centroid of train-split human "
            "captions (cosine), on test-split human captions of flowers64", "top1": round(topk_accuracy(logits, labels, 1), 4),
            "top5": round(topk_accuracy(logits, labels, 5), 4), "chance_top5": round(5 / len(classes), 4)}

