"""The CPU image builds from the Dockerfile (podman, no Docker engine) and serves from its root filesystem.

Slow (a Debian base is bootstrapped once and cached in ~/.cache): runs where root, podman and
debootstrap are present, as in CI (.ci/run installs them).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (shutil.which("podman") and shutil.which("debootstrap") and os.geteuid() == 0),
        reason="needs root, podman and debootstrap",
    ),
]


@pytest.mark.timeout(1800)  # a cold cache bootstraps Debian first
def test_cpu_image_builds_and_serves():
    r = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-image.sh"), "localhost/gan-image-service:test"],
        cwd=ROOT, env={**os.environ, "PYTHON": sys.executable, "PORT": "18181"},
        capture_output=True, text=True, timeout=1500,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "image localhost/gan-image-service:test: OK" in r.stdout
    assert "code and models: read-only for uid 10001" in r.stdout
    assert '"status": "ready"' in r.stdout or "'status': 'ready'" in r.stdout
