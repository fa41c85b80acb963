"""A model on disk: ``config.json`` (architecture, config, labels, provenance) + orbax variables.

This is what the converters write, what training writes at its end, and what predict, sweep and
report load. Loading needs nothing but this directory.
"""
import hashlib
import json
import os
import pathlib
import shutil
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from jaxnoise.errors import JaxnoiseError
from jaxnoise.models import registry

CONFIG_FILE = "config.json"
VARIABLES_DIR = "variables"
FORMAT_VERSION = 1


def file_sha256(path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as handle:
    for block in iter(lambda: handle.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def save_model(directory, spec, variables, *, source: dict | None = None) -> pathlib.Path:
  """Writes ``spec`` and ``variables`` to ``directory`` atomically (temp dir, then rename).

  Args:
    directory: destination; replaced if it exists.
    spec: the ModelSpec the variables belong to.
    variables: Flax variables ({'params': ..., 'batch_stats': ...}).
    source: provenance to record (e.g. {'path': ..., 'sha256': ...} of the upstream checkpoint).
  """
  directory = pathlib.Path(directory).absolute()
  directory.parent.mkdir(parents=True, exist_ok=True)
  staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
  try:
    metadata = {
        "format_version": FORMAT_VERSION,
        "arch": spec.arch,
        "config": dict(spec.config),
        "labels": list(spec.labels),
        "sample_rate": spec.sample_rate,
        "clip_seconds": spec.clip_seconds,
        "band": list(spec.band),
        "output_activation": spec.output_activation,
        "source": source or {},
    }
    with open(staging / CONFIG_FILE, "w", encoding="utf-8") as handle:
      json.dump(metadata, handle, indent=2)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(staging / VARIABLES_DIR, jax.tree.map(np.asarray, variables))
    checkpointer.wait_until_finished()
    if directory.exists():
      shutil.rmtree(directory)
    os.replace(staging, directory)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  return directory


def read_model_config(directory) -> dict:
  """The parsed ``config.json`` of a saved model, with a clear error if it is missing or broken."""
  path = pathlib.Path(directory) / CONFIG_FILE
  if not path.is_file():
    raise JaxnoiseError(f"{directory} is not a jaxnoise model directory: {CONFIG_FILE} is missing "
                        "(convert an upstream checkpoint with `python -m jaxnoise.convert`)")
  try:
    metadata = json.loads(path.read_text(encoding="utf-8"))
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise JaxnoiseError(f"{path} is not valid JSON: {error}") from None
  for key in ("arch", "config", "labels"):
    if key not in metadata:
      raise JaxnoiseError(f"{path} lacks the key {key!r}")
  return metadata


def load_model(directory):
  """Returns ``(spec, variables)`` of a model saved by ``save_model``."""
  directory = pathlib.Path(directory).absolute()
  metadata = read_model_config(directory)
  spec = registry.build_spec(metadata["arch"], metadata["config"])
  if list(spec.labels) != list(metadata["labels"]):
    spec = _with_labels(spec, metadata["labels"])
  expected = jax.eval_shape(spec.init, jax.random.key(0))
  try:
    restored = ocp.StandardCheckpointer().restore(directory / VARIABLES_DIR)
  except Exception as error:  # orbax raises many types for truncated or foreign files
    raise JaxnoiseError(f"cannot read the variables in {directory / VARIABLES_DIR}: "
                        f"{type(error).__name__}: {error}") from None
  variables = jax.tree.map(jnp.asarray, restored)
  _check_tree_matches(expected, variables, str(directory))
  return spec, variables


def _with_labels(spec, labels):
  import dataclasses
  if len(labels) != spec.num_classes:
    raise JaxnoiseError(f"config.json lists {len(labels)} labels for a head of "
                        f"{spec.num_classes} classes")
  return dataclasses.replace(spec, labels=tuple(labels))


def _check_tree_matches(expected, actual, where: str):
  expected_flat = {jax.tree_util.keystr(k): v for k, v in
                   jax.tree_util.tree_flatten_with_path(expected)[0]}
  actual_flat = {jax.tree_util.keystr(k): v for k, v in
                 jax.tree_util.tree_flatten_with_path(actual)[0]}
  missing = sorted(set(expected_flat) - set(actual_flat))
  unexpected = sorted(set(actual_flat) - set(expected_flat))
  misshaped = sorted(k for k in set(expected_flat) & set(actual_flat)
                     if tuple(expected_flat[k].shape) != tuple(actual_flat[k].shape))
  if missing or unexpected or misshaped:
    details = []
    if missing:
      details.append(f"missing {missing[:10]}")
    if unexpected:
      details.append(f"unexpected {unexpected[:10]}")
    if misshaped:
      details.append("mis-shaped " + ", ".join(
          f"{k}: {tuple(actual_flat[k].shape)} != {tuple(expected_flat[k].shape)}"
          for k in misshaped[:10]))
    raise JaxnoiseError(f"variables in {where} do not fit the architecture in its config.json: "
                        + "; ".join(details))
