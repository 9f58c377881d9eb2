"""Serving installs and runs without torch; torch is pinned in the training extra only."""
from __future__ import annotations

import subprocess
import sys
import tomllib

from tests.helpers import ROOT


def test_serving_dependencies_have_no_torch_and_train_pins_it():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.lower().startswith("torch") for d in project["dependencies"])
    assert "torch==2.13.0" in project["optional-dependencies"]["train"]


def test_the_service_never_imports_torch():
    code = (
        "import sys; import app.main, app.__main__, app.routes.upscale, app.runtime, app.registry, app.cli, app.client; "
        "from app.main import create_app; create_app(); "
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith('torch.') or m == 'training' or m.startswith('training.')]; "
        "assert not bad, bad"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
