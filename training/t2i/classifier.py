"""A small 102-class flower classifier on real 64 px images: the judge of the text-to-image evaluation
(class accuracy of generated images, and the features of its Frechet distance).

Trained on the train split of all 102 classes (flips, small shifts; no colour changes: colour is part of
what it must recognise), accuracy reported on the test split. The judge the cards' numbers were measured with
is shipped (``judge.pt`` beside this file, ``judge.json`` its accuracy and command): ``python -m training
t2i-classifier`` rebuilds one from the same seed into runs/, but float results differ between CPUs (a rebuild on
another machine measured 53.5% / 80.9% where the shipped one has 54.2% / 80.0%), and so would the evaluation.
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from training.t2i import data as t2i_data
from training.t2i.config import DEFAULT_PATH, TRAIN_OUT  # noqa: F401 - re-exported: where the judge lives

log = logging.getLogger("training")


class FlowerNet(nn.Module):
    """4 stages of (3x3 conv, BN, ReLU) x2 + 2x2 max pool, 64 -> 4 px, global average pool -> ``feat`` features."""

    def __init__(self, width: int = 32, classes: int = t2i_data.N_CLASSES) -> None:
        super().__init__()
        chans = [3, width, width * 2, width * 4, width * 8]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans, chans[1:]):
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True),
                       nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True), nn.MaxPool2d(2)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(chans[-1], classes))
        self.width = width

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _batch(images: np.ndarray) -> torch.Tensor:
    """uint8 [N,64,64,3] -> normalised float tensor (the same [-1,1] scaling as the generator's)."""
    return torch.from_numpy(t2i_data.to_tensor(images))


def augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    n = x.shape[0]
    flip = torch.from_numpy(rng.random(n) < 0.5)
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
    dy, dx = rng.integers(0, 9, size=2)
    return padded[:, :, dy : dy + 64, dx : dx + 64]


@torch.no_grad()
def predict(net: FlowerNet, images: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(class logits [N,102], features [N,F]) of uint8 images [N,64,64,3]."""
    net.eval()
    logits, feats = [], []
    for i in range(0, len(images), batch):
        f = net.features(_batch(images[i : i + batch]))
        feats.append(f.numpy())
        logits.append(net.head(f).numpy())
    return np.concatenate(logits), np.concatenate(feats)


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    """labels are class ids 1..102 (column id-1)."""
    top = np.argsort(-logits, 1)[:, :k] + 1
    return float((top == labels[:, None]).any(1).mean())


def train_classifier(data_dir: str = t2i_data.DEFAULT_DATA, out: str = TRAIN_OUT, width: int = 32, epochs: int = 8,
                     batch: int = 64, lr: float = 2e-3, seed: int = 0, threads: int = 1, progress: bool = True,
                     limit: int | None = None, command: str = "") -> dict:
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    ds = t2i_data.load(data_dir, attr_per_image=0, limit=limit)
    tr, te = np.flatnonzero(ds.split == "train"), np.flatnonzero(ds.split == "test")
    x_tr, y_tr = _batch(ds.images[tr]), torch.from_numpy(ds.class_ids[tr] - 1)
    net = FlowerNet(width)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=5e-4)
    steps = epochs * math.ceil(len(tr) / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    t0 = time.time()
    bar = tqdm(total=steps, disable=not progress, desc="classifier")
    for epoch in range(epochs):
        net.train()
        order = rng.permutation(len(tr))
        for i in range(0, len(order), batch):
            idx = torch.from_numpy(order[i : i + batch])
            loss = F.cross_entropy(net(augment(x_tr[idx], rng)), y_tr[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}")
        log.info("classifier epoch %d/%d: loss %.3f, %.0f s", epoch + 1, epochs, loss.item(), time.time() - t0)
    bar.close()
    logits, _ = predict(net, ds.images[te])
    result = {"test_top1": round(topk_accuracy(logits, ds.class_ids[te], 1), 4),
              "test_top5": round(topk_accuracy(logits, ds.class_ids[te], 5), 4),
              "test_images": int(len(te)), "train_images": int(len(tr)), "epochs": epochs, "width": width,
              "params": sum(p.numel() for p in net.parameters()), "seed": seed, "wall_time_s": round(time.time() - t0),
              "threads": torch.get_num_threads(), "command": command}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": net.state_dict(), "width": width, "result": result}, out)
    Path(out).with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    log.info("classifier: test top-1 %.3f top-5 %.3f (%d images) -> %s", result["test_top1"], result["test_top5"], len(te), out)
    return result


def load_classifier(path: str | Path = DEFAULT_PATH) -> tuple[FlowerNet, dict]:
    ck = torch.load(path, map_location="cpu", weights_only=False)
    net = FlowerNet(ck["width"])
    net.load_state_dict(ck["state"])
    return net.eval(), ck["result"]
