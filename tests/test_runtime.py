"""Execution providers: preference order from settings, CPU fallback when the build lacks the others."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort

from app.runtime import Session, choose_providers
from tests.helpers import write_nearest_model


def test_unavailable_providers_are_skipped_and_cpu_is_last_resort():
    assert choose_providers(["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])[-1] == "CPUExecutionProvider"
    assert choose_providers(["NoSuchExecutionProvider"]) == ["CPUExecutionProvider"]
    avail = set(ort.get_available_providers())
    for p in choose_providers(["CUDAExecutionProvider", "TensorrtExecutionProvider"]):
        assert p in avail


def test_session_reports_the_provider_it_runs_on(tmp_path):
    path = write_nearest_model(tmp_path)
    s = Session(str(path), ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert s.provider == ("CUDAExecutionProvider" if "CUDAExecutionProvider" in ort.get_available_providers() else "CPUExecutionProvider")
    x = np.random.rand(2, 3, 5, 7).astype(np.float32)
    assert np.array_equal(s.run(x), x.repeat(2, 2).repeat(2, 3))
    s.warmup(4, 16)


def test_io_binding_path_matches_plain_run(tmp_path):
    """The GPU path (IO binding) is the same code on the CPU device: same results as session.run."""
    s = Session(str(write_nearest_model(tmp_path)), ["CPUExecutionProvider"])
    x = np.random.rand(3, 3, 9, 4).astype(np.float32)
    assert np.array_equal(s.run_bound(x), s.run(x))
    assert np.array_equal(s.run_bound(x[:, :, ::2]), s.run(np.ascontiguousarray(x[:, :, ::2])))  # non-contiguous input


def _with_variant(models_dir, precision: str):
    """sr-x2 and its NAME-<precision> variant (nearest stand-ins); a function loading a CPU-preferring registry."""
    import json

    from app.config import Settings
    from app.registry import Registry

    write_nearest_model(models_dir, "sr-x2", 2)
    write_nearest_model(models_dir, f"sr-x2-{precision}", 2)
    path = models_dir / f"sr-x2-{precision}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "precision": precision, "variant_of": "sr-x2"}))

    def loaded(**kw) -> Registry:
        r = Registry(Settings(models_dir=models_dir, providers=["CPUExecutionProvider"], **kw))
        r.load()
        return r

    return loaded


def test_fp16_variants_load_only_where_they_pay_off(tmp_path, monkeypatch):
    loaded = _with_variant(tmp_path, "fp16")
    assert set(loaded().models) == {"sr-x2"}  # auto on a CPU: fp32 only
    assert set(loaded(fp16="off").models) == {"sr-x2"}
    on = loaded(fp16="on")
    assert set(on.models) == {"sr-x2", "sr-x2-fp16"} and on.upscaler(None, 2).name == "sr-x2-fp16"
    assert on.upscaler("sr-x2", 2).name == "sr-x2"
    # Where the registry sees a GPU provider first, auto loads the fp16 variant and makes it the default.
    monkeypatch.setattr("app.registry.choose_providers", lambda p: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    gpu = loaded()
    assert set(gpu.models) == {"sr-x2", "sr-x2-fp16"} and gpu.upscaler(None, 2).name == "sr-x2-fp16"


def test_int8_variants_serve_by_default_on_cpu_only(tmp_path, monkeypatch):
    loaded = _with_variant(tmp_path, "int8")
    cpu = loaded()  # auto on a CPU: the int8 variant is loaded and is the default for x2
    assert set(cpu.models) == {"sr-x2", "sr-x2-int8"} and cpu.upscaler(None, 2).name == "sr-x2-int8"
    assert cpu.upscaler("sr-x2", 2).name == "sr-x2"  # asked by name: the float model
    off = loaded(int8="off")
    assert set(off.models) == {"sr-x2"} and off.upscaler(None, 2).name == "sr-x2"
    monkeypatch.setattr("app.registry.choose_providers", lambda p: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert set(loaded().models) == {"sr-x2"}  # a GPU keeps fp32/fp16
