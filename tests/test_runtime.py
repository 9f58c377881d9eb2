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
