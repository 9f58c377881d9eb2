"""Test helpers: a torch-free tiny ONNX upscaler with a card, images in every mode, a real server."""
from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import httpx
import numpy as np
import onnx
from onnx import TensorProto, helper
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


def write_nearest_model(models_dir: Path, name: str = "nearest-x2", scale: int = 2) -> Path:
    """An exact, fast stand-in upscaler: nearest-neighbour Resize, same contract as the shipped models."""
    models_dir.mkdir(parents=True, exist_ok=True)
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, float(scale), float(scale)])
    node = helper.make_node("Resize", ["image", "", "scales"], ["output"], mode="nearest")
    graph = helper.make_graph(
        [node], name,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, "sH", "sW"])],
        initializer=[scales],
    )
    return save_with_card(graph, models_dir, name, scale)


def save_with_card(graph, models_dir: Path, name: str, scale: int) -> Path:
    """Save a test graph as NAME.onnx with a minimal card, as the registry expects them."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = models_dir / f"{name}.onnx"
    onnx.save(model, str(path))
    card = {
        "name": name, "task": "super-resolution", "scale": scale, "metrics": {"note": "test model"},
        "onnx": {"file": path.name, "opset": 17, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()},
    }
    (models_dir / f"{name}.json").write_text(json.dumps(card))
    return path


def png_bytes(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", **kw)
    return buf.getvalue()


def encoded(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def photo(w: int = 64, h: int = 48, seed: int = 0) -> np.ndarray:
    """A smooth random colour image (uint8 HxWx3): gradients plus blobs, like a photo at low detail."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    chans = []
    for _ in range(3):
        a, b, c = rng.uniform(-1, 1, 3)
        chans.append(0.5 + 0.3 * np.sin(6 * a * xx + 5 * b * yy + c) + 0.15 * np.cos(9 * b * xx * yy))
    return (np.clip(np.stack(chans, -1), 0, 1) * 255).astype(np.uint8)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``python -m app`` in a subprocess on a free loopback port, with env overrides."""

    def __init__(self, env: dict[str, str] | None = None, timeout: float = 120.0, port: int | None = None,
                 args: list[str] | None = None, ready: str = "/readyz") -> None:
        """``args``: another module to run instead of the service (``--port PORT`` is appended), answering 200 on ``ready``."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "GAN_HOST": "127.0.0.1", "GAN_PORT": str(self.port), "GAN_LOG_LEVEL": "warning", **(env or {})}
        self.log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"gan-server-{self.port}.log", "w+")
        cmd = [sys.executable, "-m", *(args + ["--port", str(self.port)] if args else ["app"])]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.output()}")
            try:
                if httpx.get(self.url + ready, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        out = self.output()
        self.stop()
        raise RuntimeError(f"server not ready in {timeout}s:\n{out}")

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def write_slow_model(models_dir: Path, name: str = "slow-x2", depth: int = 8, width: int = 48) -> Path:
    """A compute-heavy x2 model (conv stack + DepthToSpace, random weights) for timing-sensitive tests."""
    models_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    inits, nodes, prev, cin = [], [], "image", 3
    for i in range(depth + 1):
        cout = 12 if i == depth else width
        w = (rng.standard_normal((cout, cin, 3, 3)) * 0.05).astype(np.float32)
        inits.append(helper.make_tensor(f"w{i}", TensorProto.FLOAT, w.shape, w.ravel()))
        nodes.append(helper.make_node("Conv", [prev, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        prev, cin = f"c{i}", cout
    nodes.append(helper.make_node("DepthToSpace", [prev], ["d"], blocksize=2, mode="CRD"))
    nodes.append(helper.make_node("Sigmoid", ["d"], ["output"]))
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, "sH", "sW"])],
        initializer=inits,
    )
    return save_with_card(graph, models_dir, name, 2)


def metric_value(text: str, name: str) -> float:
    """Sum of a Prometheus sample's values over all its label sets in an exposition text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def write_box_degrader(models_dir: Path, name: str = "box-x4", scale: int = 4, z_dim: int = 8) -> Path:
    """An exact stand-in for the learned degradation model: (image, noise) -> box downscale + 0.1 * mean(noise),
    so the output is predictable and still depends on the seed's noise vector."""
    models_dir.mkdir(parents=True, exist_ok=True)
    nodes = [
        helper.make_node("AveragePool", ["image"], ["pooled"], kernel_shape=[scale, scale], strides=[scale, scale]),
        helper.make_node("ReduceMean", ["noise"], ["zmean"], axes=[1], keepdims=1),
        helper.make_node("Reshape", ["zmean", "shape"], ["z4"]),
        helper.make_node("Mul", ["z4", "gain"], ["offset"]),
        helper.make_node("Add", ["pooled", "offset"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"]),
         helper.make_tensor_value_info("noise", TensorProto.FLOAT, ["N", z_dim])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, "h", "w"])],
        initializer=[helper.make_tensor("shape", TensorProto.INT64, [4], [-1, 1, 1, 1]),
                     helper.make_tensor("gain", TensorProto.FLOAT, [], [0.1])],
    )
    path = save_with_card(graph, models_dir, name, scale)
    card = json.loads((models_dir / f"{name}.json").read_text())
    card["task"] = "degradation"
    card["inputs"] = [{"name": "image", "shape": ["N", 3, "H", "W"]}, {"name": "noise", "shape": ["N", z_dim]}]
    (models_dir / f"{name}.json").write_text(json.dumps(card))
    return path


def train_alone_and_under_torchrun(args: list[str], tmp_path: Path) -> tuple[Path, Path]:
    """Run ``python -m training ARGS`` once alone (--run TMP/one) and once under torchrun with 2 CPU processes
    (--run-dir TMP/two; torchrun's own --run-path takes --run); the two run directories."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "training", *args, "--run", str(tmp_path / "one")], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "training",
                          *args, "--run-dir", str(tmp_path / "two")], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    return tmp_path / "one", tmp_path / "two"


def png_declaring(w: int, h: int) -> bytes:
    """A PNG whose header declares w x h but that carries almost no data (a decompression-bomb shape)."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + chunk(b"IEND", b"")
