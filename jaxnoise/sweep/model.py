"""The model(s) a sweep classifies with: a checkpoint given in the config, or the trained fold models.

When the workdir holds the models the 'train' mode left in ``workdir/fold{k}/model``, those are
swept, each on its own test fold. Otherwise ``config.model.checkpoint`` is: a converted model
directory, or an upstream PyTorch checkpoint (converted on the fly and cached; see
``jaxnoise.runtime.checkpoints``).
"""
import dataclasses
import hashlib
import logging
import pathlib

import jax
import numpy as np

from jaxnoise.errors import ConfigError
from jaxnoise.models import store
from jaxnoise.runtime import checkpoints


@dataclasses.dataclass
class SweptModel:
  """A model to sweep and where it came from.

  Attributes:
    name: the ``model`` column of the tables.
    spec, variables: the model.
    folds: test folds this model is swept on; None for every fold in the data.
    provenance: checkpoint path, file hash, hash of the variables.
  """
  name: str
  spec: object
  variables: dict
  folds: tuple | None
  provenance: dict


def variables_sha256(variables) -> str:
  """A hash of every variable's path, shape, dtype and bytes (identifies the weights swept)."""
  digest = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(variables)[0]:
    leaf = np.asarray(leaf)
    digest.update(f"{jax.tree_util.keystr(path)}:{leaf.shape}:{leaf.dtype};".encode())
    digest.update(np.ascontiguousarray(leaf).tobytes())
  return digest.hexdigest()


def load_checkpoint_model(config) -> SweptModel:
  source, directory, found = checkpoints.model_directory(
      str(config.model.checkpoint), config.model.arch, config.data.cache_dir)
  provenance = {"checkpoint": str(source.absolute())}
  if "sha256" in found:
    provenance.update(checkpoint_sha256=found["sha256"], converted=found["converted"])
  spec, variables = store.load_model(directory)
  if source.is_dir() and config.model.arch and spec.arch != config.model.arch:
    logging.info("config.model.arch=%s, but %s holds a %s model: using %s", config.model.arch,
                 source, spec.arch, spec.arch)
  provenance["source"] = store.read_model_config(directory).get("source", {})
  provenance["variables_sha256"] = variables_sha256(variables)
  name = config.model.name or source.stem
  return SweptModel(name, spec, variables, None, provenance)


def load_trained_models(config, workdir) -> list[SweptModel]:
  """The models of the 'train' mode in ``workdir/fold{k}/model``, one per test fold."""
  models = []
  for directory in sorted(pathlib.Path(workdir).glob("fold*/model")):
    if not (directory / store.CONFIG_FILE).is_file():
      continue
    fold = int(directory.parent.name[len("fold"):])
    spec, variables = store.load_model(directory)
    # The source records the training's seed and how each of its random draws derives from it.
    models.append(SweptModel(config.model.name or spec.arch, spec, variables, (fold,),
                             {"checkpoint": str(directory.absolute()),
                              "source": store.read_model_config(directory).get("source", {}),
                              "variables_sha256": variables_sha256(variables)}))
  return models


def load_models(config, workdir) -> list[SweptModel]:
  """The models to sweep: the trained fold models of ``workdir`` if there are any (the 'train'
  mode's product, where ``config.model.checkpoint`` was only their starting point), else the
  checkpoint of ``config.model.checkpoint``."""
  models = load_trained_models(config, workdir)
  if models:
    logging.info("sweeping the trained model(s) of %s (folds %s)", workdir,
                 [m.folds[0] for m in models])
    return models
  if config.model.checkpoint:
    return [load_checkpoint_model(config)]
  raise ConfigError(
      f"nothing to sweep: {workdir} holds no trained model (fold*/model) and "
      "config.model.checkpoint is empty; run the 'train' mode first or pass "
      "--config.model.checkpoint=PATH (a converted model directory or an upstream PyTorch "
      "checkpoint)")
