# syntax=docker/dockerfile:1
# GPU image by default; CPU image with:  --build-arg ORT_PACKAGE=onnxruntime  (see README, "Containers").
# The base only needs Python 3.11+ and pip; CUDA/cuDNN come as pip wheels with onnxruntime-gpu, and the
# NVIDIA container toolkit provides the driver at run time.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG ORT_PACKAGE="onnxruntime-gpu[cuda,cudnn]"
# Behind a TLS-intercepting proxy: mount its CA bundle for the build and name it here (never copied into the image).
ARG PIP_CA_BUNDLE=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Dependencies first, from the hashed locks (scripts/lock.sh) alone: this layer is rebuilt only when a lock
# changes, not on every code change. The service's, then for the GPU image the onnxruntime-gpu swap with its
# CUDA/cuDNN wheels.
COPY requirements ./requirements
RUN if [ -n "${PIP_CA_BUNDLE}" ]; then export PIP_CERT="${PIP_CA_BUNDLE}"; fi \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes -r requirements/serve.lock \
    && if [ "${ORT_PACKAGE}" != "onnxruntime" ]; then \
         /opt/venv/bin/pip uninstall -y onnxruntime && /opt/venv/bin/pip install --require-hashes -r requirements/gpu.lock; \
       fi
# Then the project itself, without resolving anything again.
COPY pyproject.toml README.md ./
COPY app ./app
COPY degradations ./degradations
COPY cards ./cards
RUN if [ -n "${PIP_CA_BUNDLE}" ]; then export PIP_CERT="${PIP_CA_BUNDLE}"; fi \
    && /opt/venv/bin/pip install --no-deps . \
    && /opt/venv/bin/python -c "import onnxruntime, app.main; print(onnxruntime.get_available_providers())"

FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="gan-image-service" \
      org.opencontainers.image.description="Image GAN inference service (super-resolution, degradation) on ONNX Runtime"
RUN groupadd --system --gid 10001 gan && useradd --system --uid 10001 --gid gan --home-dir /srv --shell /usr/sbin/nologin gan
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv
# Code and models belong to root (COPY without --chown) and are read-only for the service's user: a compromised
# process cannot rewrite what it serves.
COPY app ./app
COPY degradations ./degradations
COPY cards ./cards
COPY models ./models
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    GAN_HOST=0.0.0.0 GAN_PORT=8000 GAN_MODELS_DIR=/srv/models
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GAN_PORT', '8000'), timeout=2)"]
# exec form: python is PID 1's child-free process and receives SIGTERM directly (graceful drain)
ENTRYPOINT ["python", "-m", "app"]
