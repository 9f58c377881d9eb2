"""The run scaffold every trainer uses: a trainer builds its nets, optimisers and samplers, hands them to a ``Run``
by name, and gives ``Run.fit`` its step function. The rest is here, once (nanoGPT's one loop; stylegan2-ada's
one directory per run):

  config.json   the trainer's config and net config (rewritten by ``resume`` when it changes steps or rates)
  ckpt.pt       latest checkpoint: every tracked object's state + torch's RNG + step + training time + best +
                what export needs; written atomically every ``ckpt_every`` steps and at the end
  best.pt       what export needs, at the best validation so far (trainers that name a metric to keep)
  stats.jsonl   one JSON line per log interval (running means of the step's named values, the step rate,
                the training time, and the validation when it ran); a resume drops the rows past its checkpoint
  train.log     the human-readable log

Under ``torchrun --nproc_per_node N`` the run starts a process group (NCCL on GPUs, gloo on CPUs): every process
draws the same batch from identically seeded samplers and trains its 1/N ``part`` of it through ``wrap``-ped nets
(DistributedDataParallel averages the gradients, so N processes train the weights of one where the loss is a
mean over samples); logged values are averaged over the processes; only the first validates and writes files.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

log = logging.getLogger("training")


def pick_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))  # torchrun: one GPU per process
    return torch.device("cpu")


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def distributed() -> tuple[int, int]:
    """(rank, world size). Under ``torchrun`` (WORLD_SIZE > 1) this starts the process group: NCCL on GPUs, gloo
    on CPUs. Alone: (0, 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def save_checkpoint(path: Path, **state: Any) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: a crash mid-save never leaves a broken checkpoint


def setup_logging(run_dir: Path) -> None:
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO)
    log.handlers.clear()
    fh = logging.FileHandler(run_dir / "train.log")
    fh.setFormatter(fmt)
    log.addHandler(fh)
    sh = logging.StreamHandler(sys.stderr)
    sh.setFormatter(fmt)
    log.addHandler(sh)


@torch.no_grad()
def ema_update(ema: torch.nn.Module, net: torch.nn.Module, step: int, decay: float) -> None:
    """Move the EMA's weights towards the net's; buffers (BatchNorm statistics) are copied."""
    decay = min(decay, (1 + step) / (10 + step))  # EMA warm-up: early weights are not averaged in for long
    for pe, p in zip(ema.parameters(), net.parameters()):
        pe.lerp_(p, 1 - decay)
    for be, b in zip(ema.buffers(), net.buffers()):
        be.copy_(b)


def set_rates(rates: dict[torch.optim.Optimizer, float]) -> None:
    """Set each optimiser's learning rate: on resume the config, not the checkpoint, says what it is."""
    for opt, lr in rates.items():
        for group in opt.param_groups:
            group["lr"] = lr


class Meter:
    """Running means of named values between log lines, the step rate, and the training time so far (what runs
    inside ``aside()``, validation, checkpoints and samples, is not training time)."""

    def __init__(self, elapsed: float = 0.0) -> None:
        self.elapsed, self.sums, self.n, self.t0, self.skipped = elapsed, {}, 0, time.time(), 0.0

    def add(self, parts: dict[str, float]) -> None:
        for k, v in parts.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.n += 1

    def training_time(self) -> float:
        return self.elapsed + time.time() - self.t0 - self.skipped

    def record(self, step: int) -> dict:
        now = time.time()
        busy = max(1e-9, now - self.t0 - self.skipped)
        self.elapsed += busy
        rec = {"step": step, **{k: v / max(1, self.n) for k, v in self.sums.items()}, "steps_per_s": self.n / busy,
               "elapsed_s": self.elapsed}
        self.sums, self.n, self.t0, self.skipped = {}, 0, now, 0.0
        return rec

    @contextlib.contextmanager
    def aside(self) -> Iterator[None]:
        t = time.time()
        try:
            yield
        finally:
            self.skipped += time.time() - t


def _state(obj: Any) -> Any:
    if isinstance(obj, np.random.Generator):
        return obj.bit_generator.state
    if isinstance(obj, torch.Generator):
        return obj.get_state()
    return obj.state_dict()


def _load(obj: Any, state: Any) -> None:
    if isinstance(obj, np.random.Generator):
        obj.bit_generator.state = state
    elif isinstance(obj, torch.Generator):
        obj.set_state(state.cpu())
    else:
        obj.load_state_dict(state)


class Run:
    """One training run: its directory, log, device, processes, tracked state, checkpoints and loop."""

    def __init__(self, run_dir: str | Path, *, threads: int, seed: int, progress: bool = True, processes: bool = True) -> None:
        """``processes=False``: the trainer does not split its batches, so it refuses to run under torchrun."""
        if not processes and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise SystemExit("this trainer runs in one process; torchrun is for train-sr, train-gan and train-h2l")
        self.rank, self.world = distributed()
        self.lead = self.rank == 0
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.lead:
            setup_logging(self.dir)
        if threads:
            torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.device = pick_device()
        self.progress = progress and self.lead
        self.step, self.elapsed = 0, 0.0
        self.best: dict = {}
        self.tracked: dict[str, Any] = {}
        self.ckpt_path, self.best_path = self.dir / "ckpt.pt", self.dir / "best.pt"

    # ---- the processes --------------------------------------------------------------------------------------------
    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """The module to train through: itself alone, DistributedDataParallel under torchrun."""
        if self.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(module, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def part(self, batch: int) -> slice:
        """This process's share of a batch that every process draws alike."""
        if batch % self.world:
            raise ValueError(f"batch {batch} does not split over {self.world} processes")
        return slice(self.rank * batch // self.world, (self.rank + 1) * batch // self.world)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Values averaged over the processes (every process must call this at the same step)."""
        if self.world == 1 or not values:
            return values
        import torch.distributed as dist

        t = torch.tensor(list(values.values()), dtype=torch.float64)
        dist.all_reduce(t)
        return dict(zip(values, (t / self.world).tolist()))

    # ---- state ----------------------------------------------------------------------------------------------------
    def track(self, **objects: Any) -> None:
        """Nets, optimisers, LR schedulers, numpy and torch random generators: checkpointed and restored by name."""
        self.tracked.update(objects)

    def begin(self, config: dict, resume: bool) -> dict | None:
        """Resume from ckpt.pt (``resume`` and one exists): restore every tracked object, torch's RNG, the step, the
        training time and the best, and drop the stats rows past the checkpoint; return the checkpoint. Otherwise
        write config.json and return None."""
        if resume and self.ckpt_path.exists():
            ck = torch.load(self.ckpt_path, map_location=self.device, weights_only=False)
            for name, obj in self.tracked.items():
                _load(obj, ck[name])
            torch.set_rng_state(ck["torch_rng"].cpu())  # map_location may have moved it; CUDA RNG is not restored
            self.step, self.elapsed = ck["step"], ck.get("elapsed", 0.0)
            self.best = ck["best"] if isinstance(ck.get("best"), dict) else {}
            log.info("resumed from %s at step %d", self.ckpt_path, self.step)
            if self.lead:
                self._truncate_stats()
            return ck
        if self.lead:
            (self.dir / "config.json").write_text(json.dumps(config, indent=2))
        return None

    def _truncate_stats(self) -> None:
        path = self.dir / "stats.jsonl"
        if path.exists():
            rows = []
            for r in path.read_text().splitlines():
                try:
                    if json.loads(r)["step"] <= self.step:
                        rows.append(r)
                except (ValueError, KeyError):  # a line cut off by the interruption
                    pass
            path.write_text("".join(r + "\n" for r in rows))

    def save(self, path: Path, exportable: dict, tracked: bool) -> None:
        """Write what export needs (+ every tracked object's state and torch's RNG: a resumable checkpoint)."""
        state = {**exportable, "step": self.step, "elapsed": self.elapsed, "best": self.best}
        if tracked:
            state |= {name: _state(obj) for name, obj in self.tracked.items()} | {"torch_rng": torch.get_rng_state()}
        save_checkpoint(path, **state)

    # ---- the loop -------------------------------------------------------------------------------------------------
    def fit(
        self,
        steps: int,
        step_fn: Callable[[int], dict[str, float]],
        *,
        log_every: int,
        ckpt_every: int,
        exportable: Callable[[], dict],
        val_every: int = 0,
        validate: Callable[[], dict[str, float]] | None = None,
        keep_best: tuple[str, str] | None = None,
        report: Callable[[dict], str | None] | None = None,
        every: tuple[tuple[int, Callable[[], None]], ...] = (),
        stop_at: int | None = None,
    ) -> Path:
        """Train to ``steps`` (or ``stop_at``, ending as an interruption would). ``step_fn(step)`` trains one step and
        returns its named values; on log steps their means go to stats.jsonl with, every ``val_every`` steps, what
        ``validate()`` returns; ``keep_best`` = (key, "min" | "max") keeps best.pt at the best of that validation
        value; ``report(record)`` gives the line to log (None: none); ``every`` = ((n, fn), ...) calls fn (samples,
        for instance) every n steps. Returns ckpt.pt's path."""
        stats = open(self.dir / "stats.jsonl", "a" if self.step else "w") if self.lead else None  # a fresh run starts a fresh log
        bar = tqdm(total=steps, initial=self.step, disable=not self.progress, dynamic_ncols=True, desc=self.dir.name)
        meter = Meter(self.elapsed)
        while self.step < min(steps, stop_at or steps):
            parts = step_fn(self.step)
            self.step += 1
            meter.add(parts)
            bar.update(1)
            last = self.step == steps
            if self.step % log_every == 0 or (val_every and self.step % val_every == 0) or last:
                rec = meter.record(self.step)
                rec |= self.mean({k: rec[k] for k in parts})
                bar.set_postfix({k: f"{rec[k]:.4f}" for k in list(parts)[:2]})
                if stats is not None:
                    with meter.aside():
                        if validate and val_every and (self.step % val_every == 0 or last):
                            rec |= validate()
                            if keep_best:
                                self._keep_best(rec, *keep_best, exportable)
                        line = report(rec) if report else None
                        if line:
                            log.info("step %d %s", self.step, line)
                        stats.write(json.dumps(rec) + "\n")
                        stats.flush()
            if self.lead and (self.step % ckpt_every == 0 or last):
                with meter.aside():
                    self.elapsed = meter.training_time()
                    self.save(self.ckpt_path, exportable(), tracked=True)
            if self.lead:
                for n, fn in every:
                    if self.step % n == 0 or last:
                        with meter.aside():
                            fn()
        bar.close()
        self.elapsed = meter.training_time()
        if stats is not None:
            stats.close()
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()  # the last checkpoint is on disk before any process returns
            dist.destroy_process_group()
        log.info("done: %d steps in %.0f s%s", self.step, self.elapsed,
                 f"; best {keep_best[0]} {self.best[keep_best[0]]:.4f} at step {self.best['step']} ({self.best_path})"
                 if keep_best and self.best else "")
        return self.ckpt_path

    def _keep_best(self, rec: dict, key: str, mode: str, exportable: Callable[[], dict]) -> None:
        """best.pt holds the exportable state at the best validation so far (adversarial games do not settle)."""
        old = self.best.get(key)
        if old is None or (rec[key] < old if mode == "min" else rec[key] > old):
            self.best = {key: rec[key], "step": self.step}
            self.save(self.best_path, exportable(), tracked=False)
