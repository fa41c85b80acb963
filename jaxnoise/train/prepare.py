"""What a training run starts from: the model with a head for the chosen classes, and the data.

From scratch, the spec comes from ``config.model`` (arch + overrides) with one output per class.
For fine-tuning, ``config.model.checkpoint`` names a converted model directory or an upstream file;
the file is converted once into ``<cache_dir>/models`` (shared with the sweep), and a head of
another size is replaced by a freshly initialised one (``config.model.allow_head_mismatch``).
"""
import dataclasses
import fnmatch
import logging
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxnoise.data import clips as clip_loading
from jaxnoise.data import esc50, splits
from jaxnoise.errors import ConfigError, JaxnoiseError
from jaxnoise.models import registry, store


@dataclasses.dataclass
class Dataset:
  """All clips of the selected classes, decoded once at the model's rate."""
  records: list
  waveforms: np.ndarray   # [clips, samples] float32
  labels: np.ndarray      # [clips] int32 model labels
  label_names: tuple
  target_ids: tuple


def select_records(config):
  """``(root, records, label_names, target_ids)`` of ``config.data`` (no audio is read)."""
  root = esc50.find_dataset(config.data.root, config.data.cache_dir,
                            download=bool(config.data.get("download", True)))
  every = splits.resplit_records(esc50.load_metadata(root), config.data)
  records, label_names, target_ids = esc50.select_classes(every, config.data.classes,
                                                          config.data.dropped_class)
  if not records:
    raise JaxnoiseError(f"{esc50.metadata_path(root)} has no clip of the classes "
                        f"{config.data.classes!r} ({', '.join(label_names)})")
  esc50.check_classes_present(every, target_ids, esc50.metadata_path(root))
  return root, records, label_names, target_ids


def load_dataset(config, spec, root, records, label_names, target_ids) -> Dataset:
  """Every clip at the spec's rate and ESC-50's 5 s, then fitted to the model as every stage does
  (``spec.fit_file``: padded to a longer clip length, or left to a frontend that repeats it)."""
  esc_length = int(round(spec.sample_rate * esc50.CLIP_SECONDS))
  started = time.time()
  waveforms = clip_loading.load_clips(records, root, spec.sample_rate, esc_length,
                                      config.data.cache_dir or None,
                                      convert=bool(config.data.convert_audio))
  logging.info("loaded %d clips at %d Hz in %.1f s", len(records), spec.sample_rate,
               time.time() - started)
  if waveforms.shape[1] != spec.clip_samples:
    waveforms = np.stack([spec.fit_file(waveform) for waveform in waveforms])
  return Dataset(records, waveforms, esc50.label_indices(records, target_ids), tuple(label_names),
                 tuple(target_ids))


def with_labels(spec, label_names):
  """``spec`` naming its outputs ``label_names`` (saved with the model, shown in reports)."""
  if spec.num_classes != len(label_names):
    raise ConfigError(f"the {spec.arch} head has {spec.num_classes} outputs for "
                      f"{len(label_names)} classes")
  return dataclasses.replace(spec, labels=tuple(label_names))


def build_model(config, label_names, rng: jax.Array):
  """The spec for ``config.model`` with a head for ``label_names``, and its starting variables.

  Returns:
    ``(spec, variables or None, provenance dict)``; None means "initialise per fold" (from
    scratch).
  """
  arch = config.model.arch
  overrides = config.model.overrides
  overrides = dict(overrides.to_dict() if hasattr(overrides, "to_dict") else overrides or {})
  overrides["num_classes"] = len(label_names)
  if "labels" in registry.default_config(arch):
    overrides["labels"] = list(label_names)
  if not config.model.checkpoint:
    return with_labels(registry.build_spec(arch, overrides), label_names), None, {"init": "random"}

  # Reading, downloading and converting checkpoints is shared with the sweep.
  from jaxnoise.sweep import model as checkpoints  # pylint: disable=import-outside-toplevel
  source = checkpoints.resolve_checkpoint(str(config.model.checkpoint))
  provenance = {"init": str(source.absolute())}
  if source.is_dir():
    directory = source
  else:
    provenance["init_sha256"] = store.file_sha256(source)
    directory = checkpoints.converted_directory(arch, source, config.data.cache_dir)
  loaded_spec, loaded = store.load_model(directory)
  if loaded_spec.arch != arch:
    raise ConfigError(f"config.model.checkpoint={str(config.model.checkpoint)!r} holds a "
                      f"{loaded_spec.arch!r} model but config.model.arch is {arch!r}")
  provenance["init_source"] = store.read_model_config(directory).get("source", {})
  spec = registry.build_spec(arch, {**dict(loaded_spec.config), **overrides})
  if jax.eval_shape(spec.init, rng) == jax.eval_shape(loaded_spec.init, rng):
    variables = loaded  # same head: continue training it
  else:
    # jit: one compilation is much faster than initialising op by op.
    fresh = jax.jit(spec.init)(rng)
    variables = transplant(loaded, fresh, head_patterns(arch),
                           bool(config.model.allow_head_mismatch), str(directory))
  return with_labels(spec, label_names), jax.tree.map(jnp.asarray, variables), provenance


def head_patterns(arch: str) -> tuple:
  """Glob patterns of the classifier-head variables (``params/head/kernel``), per the converter."""
  from jaxnoise import convert  # pylint: disable=import-outside-toplevel
  return tuple(convert.converter(arch).HEAD_PATHS.get(arch, ()))


def transplant(loaded: dict, fresh: dict, head_globs, allow_head_mismatch: bool, where: str):
  """``fresh``'s tree filled with ``loaded``'s values; head leaves of another shape stay fresh.

  Raises:
    ConfigError: a non-head variable is missing or mis-shaped, or the head differs without
      ``allow_head_mismatch``.
  """
  old = traverse_util.flatten_dict(loaded, sep="/")
  new = traverse_util.flatten_dict(fresh, sep="/")
  problems, replaced = [], []
  for path, value in new.items():
    if path in old and np.shape(old[path]) == np.shape(value):
      new[path] = old[path]
    elif allow_head_mismatch and any(fnmatch.fnmatchcase(path, g) for g in head_globs):
      replaced.append(path)
    else:
      problems.append(f"{path}: {np.shape(old[path]) if path in old else 'absent'} -> "
                      f"{np.shape(value)}")
  unexpected = sorted(set(old) - set(new))
  if problems or unexpected:
    hint = "" if allow_head_mismatch else " (set config.model.allow_head_mismatch=True?)"
    raise ConfigError(f"the variables in {where} do not fit the model to train: "
                      f"{problems[:8] + unexpected[:8]}{hint}")
  if replaced:
    logging.info("new head for the ESC classes (fresh variables): %s", replaced)
  return traverse_util.unflatten_dict(new, sep="/")
