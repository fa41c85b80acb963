"""The model(s) a sweep classifies with: a checkpoint given in the config, or the trained fold models.

When the workdir holds the models the 'train' mode left in ``workdir/fold{k}/model``, those are
swept, each on its own test fold (``config.sweep.model_fold='all'``), or only one of them:
``'best'`` is the fold whose ``fold{k}/result.json`` has the highest test accuracy (ties go to the
lower fold; the study's choice), a number is that fold. Otherwise ``config.model.checkpoint`` is: a converted model
directory, or an upstream PyTorch checkpoint (converted on the fly and cached in
``<cache_dir>/models/``). A published checkpoint named like its release asset
(``mn04_as_mAP_432.pt``) that is not on disk is downloaded once to that path when online
(``jaxnoise.runtime.checkpoints``).
"""
import dataclasses
import hashlib
import json
import logging
import pathlib

import jax
import numpy as np

from jaxnoise.config_checks import check_model_fold
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


def read_fold_results(workdir) -> dict:
  """``{test_fold: result}`` of the 'train' mode's finished folds (``fold{k}/result.json``:
  'accuracy', 'test_clips', ...)."""
  results = {}
  for path in sorted(pathlib.Path(workdir).glob("fold*/result.json")):
    result = json.loads(path.read_text(encoding="utf-8"))
    results[int(result["test_fold"])] = result
  return results


def best_fold(results: dict) -> int:
  """The fold with the highest test accuracy; ties go to the lower fold."""
  return min(results, key=lambda fold: (-float(results[fold]["accuracy"]), fold))


def chosen_fold(model_fold, workdir) -> int | None:
  """The fold whose model ``config.sweep.model_fold`` sweeps; None for 'all'.

  Raises:
    ConfigError: 'best' or a fold number without that training result in ``workdir``.
  """
  choice = check_model_fold(model_fold)
  if choice == "all":
    return None
  results = read_fold_results(workdir)
  if choice == "best":
    if not results:
      raise ConfigError(
          f"config.sweep.model_fold='best' sweeps the fold model with the highest test accuracy "
          f"of this workdir's training, but {workdir} holds no training result "
          "(fold*/result.json); run the 'train' mode first, or set model_fold='all'")
    return best_fold(results)
  if choice not in results:
    raise ConfigError(f"config.sweep.model_fold={choice}: {workdir} holds no finished training "
                      f"of test fold {choice} (fold{choice}/result.json); trained folds: "
                      f"{sorted(results) or 'none'}")
  return choice


def load_trained_models(config, workdir, only_fold: int | None = None) -> list[SweptModel]:
  """The models of the 'train' mode in ``workdir/fold{k}/model``, one per test fold (or only
  that of ``only_fold``)."""
  models = []
  for directory in sorted(pathlib.Path(workdir).glob("fold*/model")):
    if not (directory / store.CONFIG_FILE).is_file():
      continue
    fold = int(directory.parent.name[len("fold"):])
    if only_fold is not None and fold != only_fold:
      continue
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
  checkpoint of ``config.model.checkpoint``. ``config.sweep.model_fold`` picks among the fold
  models (module doc)."""
  models = load_trained_models(config, workdir, chosen_fold(config.sweep.model_fold, workdir))
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
