#!/usr/bin/env bash
# A multi-node Ray cluster on this machine (loopback), token auth on: start | env | stop.
#   scripts/local_cluster.sh start [--gpu-workers 1] [--cpu-workers 1]   # state in .cluster/
#   eval "$(scripts/local_cluster.sh env)"                                 # RAY_ADDRESS, token, Jobs URL
#   taskgraph run graphs/quickstart.yaml --address "$RAY_ADDRESS" --run-dir "$PWD/runs"
#   scripts/local_cluster.sh stop                                          # only this cluster's processes
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec "${PYTHON:-python3}" "$here/local_cluster.py" "$@"
