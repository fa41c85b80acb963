"""One training loop for every model spec: the ESC-50 fold rotations with optax, orbax and sharding.

For each test fold present in the data, the model is trained on the other folds and scored on it
(the study's protocol). Everything a run does is a function of ``config.seed``: the variables of a
model trained from scratch come from ``fold_in(key(seed), fold)``, the batch order of each epoch
from ``(seed, fold, epoch)`` and every step's augmentation (masking, mixup, noise) and dropout
from ``fold_in(.., step)``.
A run killed at any point resumes from its last orbax checkpoint and ends with the same variables,
bit for bit, as one that was never interrupted.

Batches are split over all devices of all hosts (``jaxnoise.train.steps``); the model and the data
come from ``jaxnoise.train.prepare``.

Layout of ``workdir``::

  fold{k}/checkpoints/     orbax checkpoints (every config.train.checkpoint_every steps and the end)
  fold{k}/curves.csv|png   loss / accuracy / learning rate against step
  fold{k}/predictions.csv  the test clips with their target and predicted class
  fold{k}/model/           the final model (jaxnoise.models.store), labelled with the ESC-50 names
  fold{k}/result.json      the fold's accuracy; a fold with this file is not trained again
  fold{k}/run_settings.json what determines the result; another run refuses to take the fold over
  accuracy_per_fold.csv|md the study's "accuracy per fold" table with the mean
  folds.csv                the split used: every clip of the source with its fold and recording
  data.json                the source, classes and the unreadable files skipped (skip_bad_files)
"""
import dataclasses
import json
import logging
import math
import pathlib
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import traverse_util

from jaxnoise import config_checks
from jaxnoise.data import sources
from jaxnoise.data.selection import select as select_records, write_data_record
from jaxnoise.errors import ConfigError, JaxnoiseError
from jaxnoise.models import store
from jaxnoise.runtime import distributed, files, memory
from jaxnoise.runtime import progress as progress_lib
from jaxnoise.train import curves, noise_augment, optim
from jaxnoise.train.prepare import Dataset, build_model, load_dataset, with_labels
from jaxnoise.train.steps import (Placement, augmentation_flags, evaluate, make_eval_step,
                                  make_placement, make_train_step)


# Every random draw of a fold's training, recorded with the model it produced (config.json source);
# noise augmentation, when on, records its own draws there too (source.noise_augment).
RANDOM_DRAWS = {
    "initial_variables": "split(fold_in(key(seed), fold))[0] (from scratch; a checkpoint's head "
                         "replaced for other classes is initialised from key(seed))",
    "data_order": "numpy default_rng([seed, fold, epoch]).permutation(training clips) per epoch",
    "augmentation_and_dropout": "fold_in(split(fold_in(key(seed), fold))[1], step) per step",
}


# --- Data order ---------------------------------------------------------------------------------


def epoch_order(seed: int, fold: int, epoch: int, size: int) -> np.ndarray:
  """The shuffled order of the training clips in one epoch: a function of (seed, fold, epoch)."""
  return np.random.default_rng([seed, fold, epoch]).permutation(size)


def batch_indices(seed: int, fold: int, step: int, batch_size: int, size: int) -> np.ndarray:
  """Indices of step ``step``'s batch in the stream of consecutive shuffled epochs.

  Every batch is full (a batch may span two epochs), so shapes stay static; a training set smaller
  than a batch repeats clips within it.
  """
  position, indices = step * batch_size, []
  while len(indices) < batch_size:
    epoch, offset = divmod(position, size)
    taken = epoch_order(seed, fold, epoch, size)[offset:offset + batch_size - len(indices)]
    indices.extend(taken.tolist())
    position += len(taken)
  return np.asarray(indices)


# --- One fold -----------------------------------------------------------------------------------


def steps_per_epoch(train_clips: int, batch_size: int) -> int:
  """Steps of one epoch as a PyTorch DataLoader counts them (a last, partial batch is a step):
  ``ceil(train_clips / batch_size)``, e.g. 608 clips at batch 64 are 10 steps. Batches stay full
  here (batch_indices), so such an epoch draws a few more clips than a DataLoader's."""
  return -(-int(train_clips) // int(batch_size))


def total_steps(train_config, train_clips: int) -> int:
  """``config.train.steps``, or ``epochs`` epochs (steps_per_epoch) when ``epochs > 0``."""
  epochs = float(train_config.get("epochs", 0) or 0)
  if epochs > 0:
    return int(math.ceil(epochs * steps_per_epoch(train_clips, train_config.batch_size)))
  steps = int(train_config.steps)
  if steps <= 0:
    raise ConfigError(f"config.train.steps must be positive (or set config.train.epochs), got "
                      f"{steps}")
  return steps


def _split_variables(variables) -> tuple[dict, dict]:
  variables = dict(variables)
  params = variables.pop("params")
  return params, variables


# Settings that may change between a run and its resumption: they do not change the result.
NEUTRAL_TRAIN_KEYS = ("log_every", "eval_every", "checkpoint_every", "keep_checkpoints")


def run_settings(config) -> dict:
  """What determines a fold's training; a checkpoint is only resumed by a run with the same."""
  train = {k: v for k, v in config.train.to_dict().items() if k not in NEUTRAL_TRAIN_KEYS}
  data = {k: config.data[k] for k in ("classes", "dropped_class", "convert_audio")}
  if int(config.data.get("split_folds", 0) or 0):  # a re-split changes which clips are trained on
    data.update(split_folds=config.data.split_folds, split_seed=config.data.get("split_seed", 0))
  return json.loads(json.dumps({"seed": config.seed, "model": config.model.to_dict(),
                                "data": data, "train": train}, default=list))


def _check_same_run(fold_dir: pathlib.Path, config):
  """Records the run's settings in ``fold_dir``, or refuses to resume one made with others."""
  path = fold_dir / "run_settings.json"
  settings = run_settings(config)
  if path.is_file():
    previous = json.loads(path.read_text(encoding="utf-8"))
    if previous != settings:
      now = traverse_util.flatten_dict(settings, sep=".")
      before = traverse_util.flatten_dict(previous, sep=".")
      changed = sorted(k for k in set(now) | set(before) if now.get(k) != before.get(k))
      raise ConfigError(f"{fold_dir} holds a run made with other settings ({', '.join(changed)}); "
                        "use another --workdir, or delete that folder to start over")
  elif distributed.is_writer():
    files.atomic_write_text(path, json.dumps(settings, indent=2))


def train_fold(config, spec, initial_variables, provenance: dict, data: Dataset, fold: int,
               fold_dir: pathlib.Path, placement: Placement,
               step_callback: Optional[Callable] = None, noise=None) -> dict:
  """Trains on every fold but ``fold``, scores ``fold``, saves the model; returns its result.

  ``noise``: ``(augmenter, host bank, description)`` of ``config.train.noise_augment`` or None.
  """
  _check_same_run(fold_dir, config)
  result_file = fold_dir / "result.json"
  if result_file.is_file() and (fold_dir / "model" / store.CONFIG_FILE).is_file():
    logging.info("fold %d: already trained (%s); skipped", fold, result_file)
    return json.loads(result_file.read_text(encoding="utf-8"))
  if distributed.is_writer():
    files.remove_stale_temporaries(fold_dir)  # left by a run killed while writing
  train_config = config.train
  train_index = np.asarray([i for i, r in enumerate(data.records) if r.fold != fold], np.int64)
  test_index = np.asarray([i for i, r in enumerate(data.records) if r.fold == fold], np.int64)
  if not len(train_index):
    raise JaxnoiseError(f"test fold {fold}: the other folds hold no clip of the selected classes, "
                        "so there is nothing to train on; add the other folds' audio or drop "
                        f"{fold} from config.data.test_folds")
  train_labels = data.labels[train_index]
  covered = len(np.unique(train_labels))
  if covered < len(data.label_names) or len(train_index) < int(train_config.batch_size):
    logging.warning("fold %d: training on %d clips covering %d of %d classes: accuracy will not be "
                    "comparable to the full ESC-50 protocol", fold, len(train_index), covered,
                    len(data.label_names))
  batch_size = int(train_config.batch_size)
  if batch_size % placement.size:
    raise ConfigError(f"config.train.batch_size={batch_size} must be a multiple of the "
                      f"{placement.size} devices it is split over")
  steps = total_steps(train_config, len(train_index))
  seed = int(config.seed)
  epoch_steps = steps_per_epoch(len(train_index), batch_size)
  schedule = optim.learning_rate_schedule(train_config, steps_per_epoch=epoch_steps)
  tx = optim.optimizer(train_config, schedule)
  init_key, train_key = jax.random.split(jax.random.fold_in(jax.random.key(seed), fold))
  # jit: one compilation initialises much faster than running the network op by op.
  variables = initial_variables if initial_variables is not None else jax.jit(spec.init)(init_key)
  params, model_state = _split_variables(variables)
  state = placement.replicate({"step": jnp.zeros((), jnp.int32), "params": params,
                               "model_state": model_state, "opt_state": tx.init(params)})

  every = max(int(train_config.checkpoint_every), 1)
  manager = ocp.CheckpointManager(
      (fold_dir / "checkpoints").absolute(),
      # cleanup_tmp_directories: a run killed while saving leaves a temporary checkpoint folder.
      options=ocp.CheckpointManagerOptions(max_to_keep=int(train_config.get("keep_checkpoints", 2)),
                                           create=True, cleanup_tmp_directories=True))
  try:
    start = manager.latest_step() or 0
    if start:
      abstract = jax.tree.map(
          lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
      state = manager.restore(start, args=ocp.args.StandardRestore(abstract))
      logging.info("fold %d: resumed from the checkpoint at step %d", fold, start)
    rows = {int(r["step"]): r for r in curves.read_curve(fold_dir / "curves.csv")
            if r["step"] <= start}
    augmenter, noise_bank = (noise[0], placement.replicate(noise[1])) if noise else (None, None)
    powers = noise_augment.clip_powers(augmenter, data.waveforms[train_index]) if noise else None
    train_step = make_train_step(spec, tx, schedule, train_config, placement, augmenter)
    eval_step = make_eval_step(spec)
    log_every = max(int(train_config.log_every), 1)
    eval_every = int(train_config.get("eval_every", 0) or 0)
    # Shown at every log_every step (the user's choice of how often), with the rate and ETA.
    progress = progress_lib.Progress(f"fold {fold} step", steps, "steps", done=start,
                                     log_interval=0.0)
    pending = []
    logging.info("fold %d: training on %d clips (folds %s), testing on %d; %d steps of %d on %d "
                 "device(s)", fold, len(train_index),
                 sorted({r.fold for r in data.records} - {fold}), len(test_index), steps,
                 batch_size, placement.size)
    for step in range(start, steps):
      index = batch_indices(seed, fold, step, batch_size, len(train_index))
      use_mask, use_mixup = augmentation_flags(train_config, step)
      state, metrics = train_step(state,
                                  placement.shard_batch(data.waveforms[train_index[index]]),
                                  placement.shard_batch(train_labels[index]),
                                  jax.random.fold_in(train_key, step), use_mask, use_mixup,
                                  noise_bank,
                                  None if powers is None else placement.shard_batch(powers[index]))
      pending.append(metrics)
      done = step + 1
      if done % log_every == 0 or done == steps:
        fetched = jax.device_get(pending)
        pending = []
        row = rows.setdefault(done, {"step": done})
        _check_finite_loss(fetched, fold, done, train_config)
        row.update(epoch=done / epoch_steps,
                   learning_rate=float(fetched[-1]["learning_rate"]),
                   train_loss=float(np.mean([m["loss"] for m in fetched])),
                   train_accuracy=float(np.mean([m["accuracy"] for m in fetched])))
        progress.update(done, f"loss {row['train_loss']:.4f} accuracy "
                              f"{row['train_accuracy']:.3f} lr {row['learning_rate']:.3g}")
      if len(test_index) and eval_every and done % eval_every == 0 and done != steps:
        scores = evaluate(eval_step, {"params": state["params"], **state["model_state"]},
                          data.waveforms[test_index], data.labels[test_index], batch_size,
                          placement)
        rows.setdefault(done, {"step": done}).update(test_loss=scores["loss"],
                                                     test_accuracy=scores["accuracy"])
      if done % every == 0 or done == steps:
        # Never checkpoint a diverged state: a resumed run would only continue from it.
        _check_finite_loss(jax.device_get(pending), fold, done, train_config)
        manager.save(done, args=ocp.args.StandardSave(state), force=True)
        if distributed.is_writer():
          curves.write_curve(fold_dir / "curves.csv", [rows[k] for k in sorted(rows)])
      if step_callback is not None:
        step_callback(fold, done, metrics)
  finally:
    manager.wait_until_finished()
    manager.close()

  final_variables = jax.device_get({"params": state["params"], **state["model_state"]})
  scores = evaluate(eval_step, final_variables, data.waveforms[test_index],
                    data.labels[test_index], batch_size, placement)
  train_folds = sorted({data.records[i].fold for i in train_index})
  result = {"test_fold": fold, "accuracy": scores["accuracy"], "test_loss": scores["loss"],
            "test_clips": int(len(test_index)), "train_clips": int(len(train_index)),
            "train_folds": train_folds, "steps": steps, "model_dir": str(fold_dir / "model")}
  logging.info("fold %d: test accuracy %.4f on %d clips", fold, scores["accuracy"],
               len(test_index))
  if not distributed.is_writer():
    return result
  rows.setdefault(steps, {"step": steps}).update(test_loss=scores["loss"],
                                                 test_accuracy=scores["accuracy"])
  ordered_rows = [rows[k] for k in sorted(rows)]
  curves.write_curve(fold_dir / "curves.csv", ordered_rows)
  curves.plot_curve(ordered_rows, fold_dir / "curves.png",
                    f"{config.model.name or spec.arch}, test fold {fold}")
  _write_predictions(fold_dir / "predictions.csv", [data.records[i] for i in test_index],
                     data.labels[test_index], scores["predictions"], data.label_names)
  store.save_model(fold_dir / "model", spec, final_variables, source={
      **provenance, "trained_on": "ESC-50", "test_fold": fold, "train_folds": train_folds,
      "esc50_targets": list(data.target_ids), "steps": steps, "seed": seed,
      "random_draws": RANDOM_DRAWS, **({"noise_augment": noise[2]} if noise else {})})
  # Written last and atomically: its presence marks the fold as finished.
  files.atomic_write_text(result_file, json.dumps(result, indent=2))
  return result


def _check_finite_loss(metrics, fold: int, step: int, train_config):
  """JaxnoiseError if a step's loss is NaN or infinite: the run diverged, and every later step,
  checkpoint and score would be meaningless."""
  losses = [float(m["loss"]) for m in metrics]
  if not all(math.isfinite(loss) for loss in losses):
    raise JaxnoiseError(f"fold {fold}: the training loss became {losses[-1]} by step {step} (the "
                        "run diverged); lower config.train.learning_rate (now "
                        f"{train_config.learning_rate}) and train into a new --workdir")


def _write_predictions(path, records, labels, predictions, label_names):
  columns = ("filename", "fold", "target", "category", "predicted_category", "correct")
  rows = [dict(zip(columns, (record.filename, record.fold, record.target, record.category,
                             label_names[int(predicted)], int(label == predicted))))
          for record, label, predicted in zip(records, labels, predictions)]
  files.atomic_write_csv(path, columns, rows)


def check_settings(config):
  """Every value the 'train' mode reads: the numbers (``jaxnoise.config_checks``), and the names,
  the schedule's table and the augmentation cycle, with the functions the loop itself uses."""
  config_checks.check_seed(config)
  config_checks.check_train_config(config.train)
  config_checks.check_test_folds(config.data)
  schedule = optim.learning_rate_schedule(config.train, steps_per_epoch=1.0)
  optim.optimizer(config.train, schedule)
  for index in range(max(len(tuple(config.train.augment_cycle)), 1)):
    augmentation_flags(config.train, index)


# --- All folds ----------------------------------------------------------------------------------


def train(config, workdir, *, spec=None, devices=None,
          step_callback: Optional[Callable] = None) -> dict:
  """Trains one model per test fold of ``config.data.test_folds`` present in the data.

  Args:
    config: the experiment config (``configs/base.py``); reads ``model``, ``data`` and ``train``.
    workdir: where checkpoints, curves, models and tables go (see the module docstring).
    spec: a ModelSpec to train from scratch instead of the one ``config.model`` describes (its
      head must have one output per selected class).
    devices: devices to split batches over (default: every device of every host).
    step_callback: ``callback(fold, steps_done, metrics)`` after every step (tests and tools).

  Returns:
    ``{test_fold: result}`` with 'accuracy', 'test_loss', 'test_clips', 'train_clips',
    'train_folds', 'steps' and 'model_dir' for each fold trained (absent folds are skipped).

  Raises:
    JaxnoiseError: no requested test fold is present in the data, or a fold has nothing to train on.
  """
  check_settings(config)
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  if config.train.get("retain_freed_memory", False):
    memory.retain_freed_memory()
  distributed.use_cpu_devices(int(config.train.get("cpu_devices", 0)))
  distributed.initialize(config.distributed)
  placement = make_placement(devices)
  seed = int(config.seed)
  selection = select_records(config)
  if spec is None:
    spec, initial_variables, provenance = build_model(config, selection.label_names,
                                                      jax.random.key(seed))
  else:
    spec, initial_variables, provenance = (with_labels(spec, selection.label_names), None,
                                           {"init": "random"})
  spec = dataclasses.replace(spec, precision=str(config.train.precision))
  data = load_dataset(config, spec, selection)
  if distributed.is_writer():  # once every clip decoded: a run stopped by a bad file writes nothing
    write_data_record(workdir, selection)
  noise = None
  if noise_augment.enabled(config.train):
    pool = noise_augment.resolve_pool(config, selection)
    augmenter = noise_augment.make_augmenter(config.train, spec, pool)
    noise = (augmenter, noise_augment.make_bank(augmenter, pool),
             noise_augment.describe(augmenter, pool))
    logging.info("noise augmentation: p=%g, SNR U(%g, %g) dB, noises %s", augmenter.probability,
                 augmenter.snr_low, augmenter.snr_high, ", ".join(augmenter.names))
  present = sources.folds_present(data.records)
  results = {}
  for fold in tuple(config.data.test_folds):
    fold = int(fold)
    if fold not in present:
      logging.info("test fold %d: no clip of the selected classes in the data; skipped", fold)
      continue
    results[fold] = train_fold(config, spec, initial_variables, provenance, data, fold,
                               workdir / f"fold{fold}", placement, step_callback, noise)
  if not results:
    raise JaxnoiseError(f"none of the test folds {tuple(config.data.test_folds)} has clips of the "
                        f"selected classes; folds present: {present}")
  if distributed.is_writer():
    mean = curves.write_fold_table(results, workdir, config.model.name or spec.arch)
    logging.info("mean accuracy over folds %s: %.4f", sorted(results), mean)
  return results
