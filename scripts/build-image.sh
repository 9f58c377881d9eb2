#!/usr/bin/env bash
# Build the CPU image without a Docker engine, then start the app from the image's root filesystem and
# check /readyz and /upscale. Needs root, podman and debootstrap (Debian packages).
#   scripts/build-image.sh [TAG]        (default tag: localhost/gan-image-service:cpu)
# The base image is made locally: a minimal Debian bookworm with python3, imported into podman, and
# passed to the Dockerfile as BASE_IMAGE (the same Dockerfile builds the GPU image with docker).
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${1:-localhost/gan-image-service:cpu}
BASE=localhost/debian-python:bookworm
CACHE=${CACHE_DIR:-$HOME/.cache/gan-image-service}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$CACHE"

if ! podman image exists "$BASE"; then
  root="$CACHE/rootfs"
  if [ ! -x "$root/usr/bin/python3" ]; then
    rm -rf "$root"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$MIRROR"
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/*
  fi
  tar -C "$root" -c . | podman import --change 'CMD ["/bin/bash"]' - "$BASE"
fi

# The host's CA bundle is mounted for the build only (needed where a proxy re-signs TLS; harmless elsewhere).
CA=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
podman build --format docker --isolation chroot --network host -v "$CA:/run/host-ca.crt:ro" --build-arg PIP_CA_BUNDLE=/run/host-ca.crt \
  --build-arg BASE_IMAGE="$BASE" --build-arg ORT_PACKAGE=onnxruntime -t "$TAG" .

# Start the app from the built image's root filesystem, as the image's entrypoint would (podman run needs
# a runtime this machine lacks), on a loopback port; check readiness and one real upscale.
mnt=$(podman image mount "$TAG")
port=${PORT:-18080}
mount --bind /proc "$mnt/proc" 2>/dev/null || true
mount --bind /dev "$mnt/dev" 2>/dev/null || true
cleanup() {
  if [ -n "${pid:-}" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  umount "$mnt/proc" "$mnt/dev" 2>/dev/null || true
  podman image unmount "$TAG" >/dev/null || true
}
trap cleanup EXIT
CHROOT=$(command -v chroot)
env -i PATH=/opt/venv/bin:/usr/bin:/bin HOME=/srv GAN_HOST=127.0.0.1 GAN_PORT="$port" GAN_MODELS_DIR=/srv/models \
  "$CHROOT" --userspec=10001:10001 "$mnt" /bin/sh -c 'cd /srv && exec python -m app' &
pid=$!
for _ in $(seq 1 120); do
  if "${PYTHON:-python3}" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/readyz', timeout=1)" 2>/dev/null; then break; fi
  sleep 1
done
"${PYTHON:-python3}" - "$port" <<'PY'
import io, json, sys, urllib.request
port = sys.argv[1]
ready = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5))
print("readyz:", ready)
from PIL import Image
buf = io.BytesIO(); Image.new("RGB", (40, 30), "orange").save(buf, "PNG")
req = urllib.request.Request(f"http://127.0.0.1:{port}/upscale?scale=2", data=buf.getvalue(), method="POST")
with urllib.request.urlopen(req, timeout=120) as r:
    out = Image.open(io.BytesIO(r.read()))
    assert r.status == 200 and out.size == (80, 60), (r.status, out.size)
    print("upscale:", r.status, r.headers["X-Model"], out.size)
PY
# Code and models are read-only for the service's user.
for path in /srv/app/main.py /srv/models/sr-x4.json /srv/app; do
  if "$CHROOT" --userspec=10001:10001 "$mnt" /bin/sh -c "touch $path/.w 2>/dev/null || touch $path 2>/dev/null"; then
    echo "$path is writable by the service's user"; exit 1
  fi
done
echo "code and models: read-only for uid 10001"
echo "image $TAG: OK"
podman image prune -f >/dev/null 2>&1 || true
