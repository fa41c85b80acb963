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
  try:
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp",
                                            dir=directory.parent))
  except OSError as error:
    raise JaxnoiseError(f"cannot create the model directory {directory}: {error}") from None
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
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(staging / VARIABLES_DIR, jax.tree.map(np.asarray, variables))
    checkpointer.wait_until_finished()
    metadata["variables_files"] = file_manifest(staging / VARIABLES_DIR)
    with open(staging / CONFIG_FILE, "w", encoding="utf-8") as handle:
      json.dump(metadata, handle, indent=2)
    if directory.exists():
      shutil.rmtree(directory)
    os.replace(staging, directory)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  return directory


def file_manifest(directory: pathlib.Path) -> dict:
  """``{relative path: [bytes, sha256]}`` of every file under ``directory``."""
  return {str(path.relative_to(directory)): [path.stat().st_size, file_sha256(path)]
          for path in sorted(directory.rglob("*")) if path.is_file()}


def check_manifest(directory: pathlib.Path, manifest: dict):
  """JaxnoiseError naming the first file of ``manifest`` that is missing, shorter or altered.

  orbax reads a truncated file with errors from deep inside tensorstore (and may print tracebacks
  from its event loop), and would read an altered one without complaint; checking first gives one
  clear message for both.
  """
  hint = "copy the model again, or convert / train it anew"
  for name, (size, digest) in manifest.items():
    path = directory / name
    if not path.is_file():
      raise JaxnoiseError(f"model directory {directory.parent} is incomplete: {path} is missing; "
                          f"{hint}")
    if path.stat().st_size != size:
      raise JaxnoiseError(f"{path} holds {path.stat().st_size} bytes, {size} were saved (a "
                          f"truncated copy?); {hint}")
    if file_sha256(path) != digest:
      raise JaxnoiseError(f"{path} does not hold the bytes that were saved (sha256 differs: a "
                          f"corrupt copy); {hint}")


def read_model_config(directory) -> dict:
  """The parsed ``config.json`` of a saved model, with a clear error if it is missing or broken."""
  path = pathlib.Path(directory) / CONFIG_FILE
  if not pathlib.Path(directory).exists():
    raise JaxnoiseError(f"model directory {directory} does not exist")
  if not path.is_file():
    raise JaxnoiseError(f"{directory} is not a jaxnoise model directory: {CONFIG_FILE} is missing "
                        "(convert an upstream checkpoint with `python -m jaxnoise.convert`)")
  try:
    metadata = json.loads(path.read_text(encoding="utf-8"))
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise JaxnoiseError(f"{path} is not valid JSON: {error}") from None
  if not isinstance(metadata, dict):
    raise JaxnoiseError(f"{path} holds a JSON {type(metadata).__name__}, expected an object")
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
    spec = _with_labels(spec, metadata["labels"], directory / CONFIG_FILE)
  expected = jax.eval_shape(spec.init, jax.random.key(0))
  # Directories saved before the manifest was recorded are read without this check.
  check_manifest(directory / VARIABLES_DIR, metadata.get("variables_files", {}))
  try:
    restored = ocp.StandardCheckpointer().restore(directory / VARIABLES_DIR)
  except Exception as error:  # orbax raises many types for truncated or foreign files
    # The first sentence names the file and the problem; the rest is tensorstore's whole spec.
    reason = str(error).split(" [tensorstore_spec=")[0].splitlines()[0][:400]
    raise JaxnoiseError(f"cannot read the variables in {directory / VARIABLES_DIR} (truncated or "
                        f"corrupt? convert or save the model again): {type(error).__name__}: "
                        f"{reason}") from None
  variables = jax.tree.map(jnp.asarray, restored)
  _check_tree_matches(expected, variables, str(directory), metadata["arch"])
  _check_finite(restored, str(directory))
  return spec, variables


def _with_labels(spec, labels, path):
  import dataclasses
  if len(labels) != spec.num_classes:
    raise JaxnoiseError(f"{path} lists {len(labels)} labels for a head of "
                        f"{spec.num_classes} classes")
  return dataclasses.replace(spec, labels=tuple(labels))


def _check_finite(variables, where: str):
  """A NaN or Inf weight makes every score NaN and every decision class 0: refuse it here."""
  leaves = jax.tree_util.tree_flatten_with_path(variables)[0]
  bad = [jax.tree_util.keystr(path) for path, leaf in leaves
         if not np.all(np.isfinite(np.asarray(leaf)))]
  if bad:
    raise JaxnoiseError(f"variables in {where} hold NaN or Inf values ({len(bad)} arrays, e.g. "
                        f"{bad[:3]}): a corrupt checkpoint or a diverged training run")


def _check_tree_matches(expected, actual, where: str, arch: str):
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
      details.append(f"{len(missing)} missing (e.g. {missing[:3]})")
    if unexpected:
      details.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    if misshaped:
      details.append(f"{len(misshaped)} mis-shaped (e.g. " + ", ".join(
          f"{k}: {tuple(actual_flat[k].shape)} != {tuple(expected_flat[k].shape)}"
          for k in misshaped[:3]) + ")")
    raise JaxnoiseError(f"variables in {where} do not fit the {arch!r} architecture its "
                        f"config.json names (a checkpoint of another model?): "
                        + "; ".join(details))
