# The predictor image: what leaves the pipeline. numpy + safetensors, the predictor's code, its HTTP
# server (uvicorn + Starlette, msgspec, simdjson, orjson, prometheus-client) and the exported
# models; no scikit-learn, no pickle, no data set, no network at start-up.
# Build it after `dvc repro` (the build context must hold the models and metrics .dockerignore lets in) with
#   bash scripts/build_image.sh housing-mlops
# which gives the build args below from scripts/image_metadata.py (the version is pyproject.toml's).
#   docker run --rm housing-mlops                                      # selfcheck (the default)
#   docker run --rm -i housing-mlops predict --model q8 < features.csv > predictions.csv
#   docker run --rm -p 8080:8080 housing-mlops serve                   # HTTP: V2 and /invocations
# tests/test_image.py builds it on a Docker engine and checks that image (docs/ci.md).
#
# The base: the current Python 3.11 patch release on Debian 13 (trixie), pinned so a rebuild is the
# same image. GitHub builds this default; --build-arg PYTHON_IMAGE=... builds on another Python 3.11
# image (CI here: a stand-in built from Debian packages, as Docker Hub cannot be reached).
# Dependabot cannot bump this pin: it reads only literal FROM lines (dependabot-core#2057), so
# docs/ci.md says how to bump it by hand.
ARG PYTHON_IMAGE=python:3.11.17-slim-trixie
FROM ${PYTHON_IMAGE}

WORKDIR /app

# Runtime dependencies only (pinned: requirements-runtime.txt), then delete
# what the predictor never loads (tests, stubs, numpy.random, f2py...): scripts/prune_runtime.sh.
COPY requirements-runtime.txt scripts/prune_runtime.sh ./
RUN pip install --no-cache-dir --disable-pip-version-check -r requirements-runtime.txt \
    && sh prune_runtime.sh "$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
    && rm requirements-runtime.txt prune_runtime.sh

# The predictor package, whole (the CLI needs numpy and safetensors; `serve` the rest of
# requirements-runtime.txt), compiled once here: the
# runtime user cannot write __pycache__, and compiling at every start is slow.
COPY housing_predictor/ housing_predictor/
RUN python -m compileall -q housing_predictor

# The artifacts of `dvc repro`: the models, the selfcheck sample and the metrics it is checked
# against. After the code, so that a change of params rebuilds only these layers and the next.
COPY models/float.safetensors models/q8.safetensors models/q16.safetensors models/q8int.safetensors models/selfcheck.csv models/
COPY metrics/float.json metrics/q8.json metrics/q16.json metrics/q8int.json metrics/

# Last, so that a new commit rebuilds only these layers. Given by scripts/build_image.sh.
ARG REVISION=unknown
ARG VERSION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="housing-mlops predictor" \
      org.opencontainers.image.description="California Housing linear model (float, 8-bit, 16-bit, integer-only 8-bit): CSV predictions and an Open Inference Protocol server" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}"
ENV GIT_COMMIT="${REVISION}" \
    IMAGE_VERSION="${VERSION}" \
    PYTHONDONTWRITEBYTECODE=1 \
    SERVE_HOST=0.0.0.0 \
    SERVE_PORT=8080

# `serve` listens on 8080 (all interfaces: the container's own network namespace). The health
# check asks the server's /v2/health/ready (python's urllib: a slim image has no curl); while the
# container runs another command (selfcheck, predict) there is no server and nothing to check.
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-m", "housing_predictor.healthcheck"]

# Not root: a numeric uid needs no user database, and orchestrators can verify it (runAsNonRoot).
USER 10001:10001
ENTRYPOINT ["python", "-m", "housing_predictor"]
CMD ["selfcheck"]
