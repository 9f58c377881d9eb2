"""Two real replicas behind Debian's nginx with docker/nginx.conf.template, all on loopback.

Kill one replica mid-load: no client request fails (nginx retries on the other), the dead one is taken
out of rotation; restart it: it takes traffic again. Bounded in requests and time.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.helpers import ROOT, ServerProcess, free_port, metric_value, photo, png_bytes

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx (apt-get install nginx-light)")
FAIL_TIMEOUT_S = 3


def render(template: Path, values: dict[str, str]) -> str:
    text = template.read_text()
    for k, v in values.items():
        text = text.replace("${" + k + "}", v)
    assert "${NGINX" not in text
    return text


class Nginx:
    def __init__(self, tmp: Path, upstream_ports: list[int], rate: int = 1000, burst: int = 1000) -> None:
        self.port = free_port()
        servers = " ".join(f"server 127.0.0.1:{p} max_fails=1 fail_timeout={FAIL_TIMEOUT_S}s;" for p in upstream_ports)
        site = render(ROOT / "docker" / "nginx.conf.template",
                      {"NGINX_PORT": f"127.0.0.1:{self.port}", "NGINX_UPSTREAM_SERVERS": servers, "NGINX_CLIENT_MAX_BODY": "25m",
                       "NGINX_RATE_LIMIT": str(rate), "NGINX_RATE_BURST": str(burst), "NGINX_CONN_LIMIT": "64", "NGINX_RESOLVER": "127.0.0.1"})
        (tmp / "site.conf").write_text(site)
        self.error_log = tmp / "error.log"
        (tmp / "nginx.conf").write_text(
            f"daemon off; worker_processes 1; pid {tmp}/nginx.pid; error_log {self.error_log} warn;\n"
            "events { worker_connections 256; }\n"
            f"http {{ access_log off; client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;\n"
            f"  fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;\n"
            f"  include {tmp}/site.conf; }}\n"
        )
        self.proc = subprocess.Popen(["nginx", "-p", str(tmp), "-c", str(tmp / "nginx.conf")])
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(100):
            try:
                if httpx.get(self.url + "/nginx-health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("nginx did not start: " + self.error_log.read_text())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def served(replica: ServerProcess) -> float:
    return metric_value(httpx.get(replica.url + "/metrics").text, 'gan_requests_total{method="POST",route="/upscale",status="200"}')


def test_failover_and_recovery(nearest_models, tmp_path):
    env = {"GAN_MODELS_DIR": str(nearest_models)}
    a, b = ServerProcess(env), ServerProcess(env)
    lb = Nginx(tmp_path, [a.port, b.port])
    body = png_bytes(Image.fromarray(photo(48, 48)))
    statuses: list[int] = []

    def one(_: int) -> int:
        try:
            return httpx.post(lb.url + "/upscale?scale=2", content=body, timeout=30).status_code
        except httpx.HTTPError:
            return -1

    try:
        with ThreadPoolExecutor(4) as pool:
            statuses += pool.map(one, range(40))
            assert served(a) > 0 and served(b) > 0  # both in rotation
            a.proc.kill()  # mid-load, no drain
            a.proc.wait(10)
            killed_at = time.time()
            statuses += pool.map(one, range(120))
            during = time.time() - killed_at
        assert statuses.count(200) == len(statuses), f"failed requests: {[s for s in statuses if s != 200]}"
        # Out of rotation: nginx tried the dead replica only about once per fail_timeout window per worker
        # connection, not on every other request.
        refused = sum("Connection refused" in line for line in lb.error_log.read_text().splitlines())
        assert 1 <= refused <= 4 * (during / FAIL_TIMEOUT_S + 1) and refused < 60

        a.stop()
        a2 = ServerProcess(env, port=a.port)  # the replica comes back on the same address
        try:
            time.sleep(FAIL_TIMEOUT_S + 0.5)
            with ThreadPoolExecutor(4) as pool:
                later = list(pool.map(one, range(40)))
            assert later.count(200) == 40
            assert served(a2) > 0, "the restarted replica gets traffic again"
        finally:
            a2.stop()
    finally:
        lb.stop()
        b.stop()
        if a.proc.poll() is None:
            a.stop()


def test_rate_limit_answers_json_429_and_metrics_stay_inside(nearest_models, tmp_path):
    replica = ServerProcess({"GAN_MODELS_DIR": str(nearest_models)})
    lb = Nginx(tmp_path, [replica.port], rate=1, burst=2)
    try:
        statuses, limited = [], None
        for _ in range(8):  # far above 1 request/s with a burst of 2
            r = httpx.get(lb.url + "/v1/models", timeout=10)
            statuses.append(r.status_code)
            if r.status_code == 429:
                limited = r
        assert statuses.count(200) >= 1 and limited is not None
        assert limited.json()["error"]["code"] == "rate_limited" and limited.headers["retry-after"] == "1"
        r = httpx.get(lb.url + "/metrics", timeout=10)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"  # Prometheus scrapes replicas directly
        assert httpx.get(replica.url + "/metrics", timeout=10).status_code == 200
    finally:
        lb.stop()
        replica.stop()
