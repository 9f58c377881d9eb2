"""The run scaffold (training/run.py) that every trainer uses: a toy trainer on it resumes exactly, keeps the best
validated snapshot, truncates stats on resume, calls its periodic hooks, refuses torchrun where the trainer cannot
split batches; and a GAN trainer under torchrun (2 CPU processes) trains the weights of one process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from tests.helpers import photo, train_alone_and_under_torchrun  # noqa: E402
from training.run import Run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def toy(run_dir: Path, steps: int, resume: bool = False, stop_at: int | None = None, hooks: list | None = None) -> Run:
    """A linear regression on the scaffold: a net, its optimiser and a numpy sampler, validated every 4 steps."""
    run = Run(run_dir, threads=1, seed=0, progress=False)
    net = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    rng = np.random.default_rng(0)
    run.track(net=net, opt=opt, rng=rng)
    run.begin({"trainer": "toy"}, resume)
    w = torch.tensor([[1.0, -2.0, 0.5]])

    def step_fn(step: int) -> dict[str, float]:
        x = torch.from_numpy(rng.standard_normal((8, 3)).astype(np.float32))
        loss = ((net(x) - x @ w.T + 0.1 * torch.randn(8, 1)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    vals = iter([3.0, 1.0, 2.0, 0.5, 4.0])  # the validation scores, in order (min is best)

    def validate() -> dict[str, float]:
        return {"val": next(vals) if not resume else 9.0}

    run.fit(steps, step_fn, log_every=2, ckpt_every=2, val_every=4, validate=validate, keep_best=("val", "min"),
            exportable=lambda: {"weights": net.state_dict()}, every=((3, lambda: hooks.append(run.step)),) if hooks is not None else (),
            stop_at=stop_at)
    return run


def test_resume_is_exact_and_stats_are_truncated(tmp_path):
    whole = toy(tmp_path / "whole", 12)
    toy(tmp_path / "split", 12, stop_at=6)
    with open(tmp_path / "split" / "stats.jsonl", "a") as f:  # rows past the checkpoint (as after a crash) are dropped
        f.write(json.dumps({"step": 7, "loss": 1.0}) + "\n{\"step\": 8, \"lo")
    resumed = toy(tmp_path / "split", 12, resume=True)
    a = torch.load(tmp_path / "whole" / "ckpt.pt", weights_only=False)
    b = torch.load(tmp_path / "split" / "ckpt.pt", weights_only=False)
    assert a["step"] == b["step"] == 12 and resumed.step == whole.step == 12
    for k in a["net"]:
        assert torch.equal(a["net"][k], b["net"][k])
    rows = [json.loads(r) for r in (tmp_path / "split" / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6, 8, 10, 12]
    assert all(r["elapsed_s"] > 0 and r["steps_per_s"] > 0 for r in rows)
    assert "resumed from" in (tmp_path / "split" / "train.log").read_text()
    assert json.loads((tmp_path / "split" / "config.json").read_text()) == {"trainer": "toy"}


def test_best_snapshot_and_hooks(tmp_path):
    hooks: list[int] = []
    run = toy(tmp_path / "r", 18, hooks=hooks)
    rows = [json.loads(r) for r in (tmp_path / "r" / "stats.jsonl").read_text().splitlines()]
    assert [r["val"] for r in rows if "val" in r] == [3.0, 1.0, 2.0, 0.5, 4.0]  # steps 4, 8, 12, 16 and the last
    best = torch.load(tmp_path / "r" / "best.pt", weights_only=False)
    assert best["step"] == 16 and best["best"] == {"val": 0.5, "step": 16} == run.best and "weights" in best
    assert "opt" not in best and "opt" in torch.load(tmp_path / "r" / "ckpt.pt", weights_only=False)
    assert hooks == [3, 6, 9, 12, 15, 18]


def test_one_process_trainers_refuse_torchrun(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit, match="one process"):
        Run(tmp_path, threads=1, seed=0, processes=False)


def test_resume_command_continues_every_kind_of_run(tmp_path):
    """`resume` reads the trainer from config.json: here a style-encoder run (the others have their own tests)."""
    from training.cli import _trainer

    for kind, module in (("sr", "train_sr"), ("gan", "train_gan"), ("h2l", "train_h2l"), ("t2i", "t2i.train"), ("style", "t2i.style")):
        _, train = _trainer(kind)
        assert train.__module__ == f"training.{module}"


def test_resume_set_reaches_a_config_field_added_after_the_run_began(tmp_path, monkeypatch):
    """A run's config.json written before a field existed: resume fills it with its default, --set can change it,
    and the rewritten config.json records it."""
    from dataclasses import asdict

    import training.cli as cli
    from training.t2i.config import T2ITrainConfig

    old = {k: v for k, v in asdict(T2ITrainConfig(run_dir="elsewhere/copied-from", arch="lapgan")).items() if k != "chain"}
    (tmp_path / "config.json").write_text(json.dumps({"trainer": "t2i", "train": old}))
    got = []
    monkeypatch.setattr(cli, "_trainer", lambda kind: (T2ITrainConfig, lambda cfg, **kw: got.append(cfg)))
    cli.main(["resume", str(tmp_path), "--set", "chain=0.5"])
    assert got[0].chain == 0.5 and got[0].arch == "lapgan" and got[0].run_dir == str(tmp_path)  # a copied run continues in the copy
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["train"]["chain"] == 0.5 and saved["resumed_with"] == [f"python -m training resume {tmp_path} --set chain=0.5"]
    with pytest.raises(SystemExit, match="chain is a float"):
        cli.main(["resume", str(tmp_path), "--set", "chain=half"])


def test_gan_under_torchrun_trains_the_weights_of_one_process(tmp_path):
    """train-gan with 2 CPU processes (gloo), each on half of every batch: per-sample losses (vanilla GAN, VGG patch
    discriminator without batch statistics) give the weights of one process on whole batches."""
    hr = tmp_path / "hr"
    hr.mkdir()
    for i in range(5):
        Image.fromarray(photo(64, 64, seed=i)).save(hr / f"{i}.png")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sr = ["train-sr", "--data", str(hr), "--scale", "2", "--arch", "srresnet", "--channels", "8", "--blocks", "1", "--up-channels", "8",
          "--patch", "32", "--batch", "4", "--steps", "2", "--val-images", "1", "--threads", "1", "--no-progress", "--run", str(tmp_path / "sr")]
    assert subprocess.run([sys.executable, "-m", "training", *sr], cwd=ROOT, env=env, capture_output=True, timeout=300).returncode == 0
    common = ["train-gan", "--data", str(hr), "--init", str(tmp_path / "sr" / "ckpt.pt"), "--disc", "vgg", "--disc-channels", "8",
              "--gan-loss", "vanilla", "--patch", "32", "--batch", "4", "--steps", "4", "--val-images", "1", "--val-crop", "48",
              "--val-every", "4", "--ckpt-every", "2", "--log-every", "2", "--threads", "1", "--no-progress"]
    train_alone_and_under_torchrun(common, tmp_path)
    a, b = (torch.load(tmp_path / r / "ckpt.pt", weights_only=False) for r in ("one", "two"))
    assert a["step"] == b["step"] == 4
    for key in ("net", "ema", "disc"):
        for k in a[key]:
            if a[key][k].is_floating_point():
                assert torch.allclose(a[key][k], b[key][k], atol=1e-5), (key, k, (a[key][k] - b[key][k]).abs().max())
    assert "2 processes (DDP)" in (tmp_path / "two" / "train.log").read_text()
