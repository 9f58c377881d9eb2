#!/usr/bin/env bash
# Pin the third-party images (the Dockerfile's base, nginx and Prometheus in docker-compose.yml) to the digests the
# registry serves for their tags today: NAME:TAG -> NAME:TAG@sha256:... Run where a registry is reachable (needs
# skopeo, or docker with buildx), review the diff, commit. Re-run to move to newer patch releases deliberately.
#   scripts/pin-images.sh            rewrite the files
#   scripts/pin-images.sh --check    exit 1 when an image is not pinned (for CI where a registry is reachable)
set -euo pipefail
cd "$(dirname "$0")/.."
images() {  # the image references of the files, tag and (if any) digest
  sed -n 's/^ARG BASE_IMAGE=\(.*\)$/\1/p' Dockerfile
  sed -n 's/^ *image: \([a-z].*\)$/\1/p' docker-compose.yml | grep -v '^gan-image-service'
}
digest() {  # NAME:TAG -> sha256:... of the manifest list (every platform)
  if command -v skopeo >/dev/null; then
    skopeo inspect --raw "docker://$1" | sha256sum | sed 's/^\([0-9a-f]*\).*/sha256:\1/'
  elif command -v docker >/dev/null; then
    docker buildx imagetools inspect "$1" --format '{{json .Manifest.Digest}}' | tr -d '"'
  else
    echo "need skopeo or docker to read digests from the registry" >&2; exit 2
  fi
}
if [ "${1:-}" = "--check" ]; then
  unpinned=$(images | grep -v '@sha256:' || true)
  [ -z "$unpinned" ] || { echo "not pinned by digest:"; echo "$unpinned"; exit 1; }
  echo "every image is pinned by digest"; exit 0
fi
for ref in $(images); do
  tag=${ref%@*}
  pinned="$tag@$(digest "$tag")"
  [ "$ref" = "$pinned" ] && continue
  echo "$ref -> $pinned"
  sed -i "s|ARG BASE_IMAGE=$ref\$|ARG BASE_IMAGE=$pinned|" Dockerfile
  sed -i "s|image: $ref\$|image: $pinned|" docker-compose.yml
done
