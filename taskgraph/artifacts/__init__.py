"""Artifacts layer: run directories, atomic writes, safetensors parameters."""

from taskgraph.artifacts.files import atomic_write_json, load_params, read_json, save_params
from taskgraph.artifacts.rundir import RunDir, write_node

__all__ = ["RunDir", "write_node", "atomic_write_json", "load_params", "read_json", "save_params"]
