# The image of every Ray node of a taskgraph cluster (docker-compose.yml builds it).
#
# Ray's official image, pinned to the Ray the project uses (pyproject: ray>=2.60,<2.61).
#   GPU nodes:  FLAVOR=gpu, rayproject/ray:2.60.0-py311-gpu   (CUDA, CUDA torch; default)
#   CPU only:   FLAVOR=cpu, rayproject/ray:2.60.0-py311-cpu   (torch from the CPU wheel index, much smaller)
# (--build-arg FLAVOR=cpu, or TASKGRAPH_FLAVOR=cpu for compose, which tags the two differently.)
ARG FLAVOR=gpu
ARG RAY_IMAGE=rayproject/ray:2.60.0-py311-gpu
FROM ${RAY_IMAGE}
ARG FLAVOR

# torch first, pinned: the Ray image has none, and an unpinned resolve could pick another version
# than the one the project is tested with. The default PyPI wheel carries CUDA; FLAVOR=cpu takes
# the CPU wheel index instead (TORCH_INDEX_URL overrides either).
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=
# Backends for --run-dir URLs, e.g. "s3fs" or "gcsfs" (empty: shared paths only).
ARG EXTRA_PIP=

RUN index="${TORCH_INDEX_URL:-$([ "$FLAVOR" = cpu ] && echo https://download.pytorch.org/whl/cpu)}" \
    && pip install --no-cache-dir "torch==${TORCH_VERSION}" ${index:+--index-url "$index"}

WORKDIR /home/ray/taskgraph
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users taskgraph ./taskgraph
COPY --chown=ray:users graphs ./graphs
# Editable, so a job's shipped taskgraph (py_modules) and this one resolve to the same package name;
# torch stays the pinned one (already satisfied). ray[default,train] matches the image's Ray.
RUN pip install --no-cache-dir -e . "torch==${TORCH_VERSION}" ${EXTRA_PIP} \
    && python -c "import torch, ray, ray.train.torch, taskgraph; print('torch', torch.__version__, 'ray', ray.__version__)"

# The shared volume for run directories and the result cache: owned by the image's `ray` user, so
# a fresh named volume (which copies this folder's owner) is writable by every node.
USER root
RUN mkdir -p /shared && chown ray:users /shared
USER ray
