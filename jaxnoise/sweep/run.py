"""The sweep mode: every noise x realisation x SNR x test clip through a model, into the tables.

  run(config, workdir)   # what `launch.py` calls for the 'sweep' mode

1. the model(s): ``config.model.checkpoint`` or the trained fold models (``jaxnoise.sweep.model``);
2. the test clips of the configured classes and folds, or the clips of
   ``config.sweep.inference_root``, as records of ``jaxnoise.data.sources`` (any source), decoded
   once at the model's rate and cut by ``config.data.clip_policy`` (noise is mixed at that length;
   ``engine.model_input`` then fits them to the model as it expects);
3. the noises by name (``jaxnoise.data.noises``);
4. a ('clips', 'snrs') device mesh over every device of every host, and the compiled engine;
5. one unit at a time (the clean pass, then each noise realisation), skipping units a previous,
   interrupted run already finished; process 0 writes each unit, then the tidy tables.
"""
import dataclasses
import importlib.metadata
import logging
import math
import pathlib
import platform
import time

import jax
import numpy as np

from jaxnoise.config_checks import check_seed, check_sweep_config
from jaxnoise.data import clips as clip_loading
from jaxnoise.data import label_map as label_map_lib
from jaxnoise.data import labels as label_sets
from jaxnoise.data import selection as data_selection
from jaxnoise.data import sources as data_sources
from jaxnoise.data import zero_shot
from jaxnoise.errors import ConfigError
from jaxnoise.models import cost
from jaxnoise.runtime import distributed
from jaxnoise.runtime import progress as progress_lib
from jaxnoise.sweep import accuracy
from jaxnoise.sweep import engine as engine_lib
from jaxnoise.sweep import model as model_lib
from jaxnoise.data import noises as noise_lib
from jaxnoise.sweep import readout as readout_lib
from jaxnoise.sweep import sharding, store

CLEAN_SNR = math.inf  # the clean pass: gain exactly 0
# The noise_source cell of a clip with no power in the model's band: its gain is 0 at every SNR
# (the study's rule), so its noisy rows are its clean prediction and are marked as such.
SILENT_CLIP_SOURCE = "none: silent clip (no power in the band)"
# On CPU a network call of about this many clips x SNRs runs fastest (activations stay in cache):
# mn04 ran ~1.9x faster with 8-16 clips per call than with 16 clips x 13 SNRs, HTS-AT 1.7x faster
# with 8 than with 16; CNN10 and TFNet were within ~20% from 1 to 16 (benchmarks/sweep.py).
CPU_CLIPS_PER_CALL = 8


def snr_batch_for(setting: int, platform: str, clips_per_device: int) -> int:
  """``config.sweep.snr_batch`` resolved: -1 picks by platform (see CPU_CLIPS_PER_CALL)."""
  if setting >= 0:
    return setting
  if platform == "cpu":
    return max(1, CPU_CLIPS_PER_CALL // max(1, clips_per_device))
  return 0


def test_records(config, clip_set):
  """``(selection, tested records)`` for the configured classes and folds of ``clip_set``."""
  chosen = data_selection.select(config, clip_set)
  present = data_sources.folds_present(chosen.records)
  folds = tuple(int(fold) for fold in config.sweep.folds) or present
  tested = sorted((r for r in chosen.records if r.fold in folds),
                  key=lambda r: (r.fold, data_sources.sort_key(r)))
  if not tested:
    raise ConfigError(f"config.sweep.folds={folds}: no clip of the classes "
                      f"{config.data.classes!r} there in {clip_set.where} (folds present: "
                      f"{present})")
  return chosen, tested


def inference_set(config) -> data_sources.ClipSet:
  """The clips of ``config.sweep.inference_root``, read by ``config.sweep.inference_source``
  (default: detected from the layout, ``sources.detect_source``)."""
  root = pathlib.Path(str(config.sweep.inference_root)).expanduser()
  if not root.exists():
    raise ConfigError(f"config.sweep.inference_root={str(root)!r} does not exist; give a folder "
                      "of labelled clips (ESC-50 layout, a manifest CSV, UrbanSound8K or one "
                      "folder per class)")
  source = str(config.sweep.get("inference_source", "")) or data_sources.detect_source(root)
  data_sources.check_source_name(source, "config.sweep.inference_source")
  return data_sources.read_source(config.data, source, root)


def inference_classes(inputs, models):
  """``inputs`` deciding among the swept model's classes (the inference set's rule).

  A head trained on named classes decides among all of them; an AudioSet head (zero-shot)
  decides among the inference set's own labels. Clips of a label the model lacks are refused,
  naming the labels and their clip counts: a model cannot be right about a class it cannot output.
  """
  labels = {tuple(swept.spec.labels) for swept in models}
  if len(labels) != 1:
    raise ConfigError(f"the swept models name different classes ({len(labels)} label sets); an "
                      "inference set needs models of one label set")
  labels = labels.pop()
  if labels == label_sets.audioset_labels():
    return inputs
  clip_set = inputs.selection.clip_set
  absent = sorted({r.category for r in inputs.tested} - set(labels))
  if absent:
    counts = {name: sum(r.category == name for r in inputs.tested) for name in absent}
    raise ConfigError(f"config.sweep.inference_root: {sum(counts.values())} clip(s) of "
                      f"{len(absent)} class(es) the model does not have: {counts}; the model's "
                      f"classes are {list(labels[:8])}{', ...' if len(labels) > 8 else ''}; "
                      "remove those clips or sweep a model trained on them")
  classes = clip_set.classes + tuple(name for name in labels if name not in clip_set.classes)
  target_ids = tuple(classes.index(name) for name in labels)
  selection = dataclasses.replace(inputs.selection, label_names=tuple(labels),
                                  target_ids=target_ids)
  return dataclasses.replace(inputs, selection=selection, label_names=tuple(labels),
                             target_ids=target_ids)


@dataclasses.dataclass
class Group:
  """One model and the clips it is swept on (all test clips, or its own test fold)."""
  model: model_lib.SweptModel
  records: list
  prefix: str


def unit_rows(model_name, records, unit, snrs, predicted, target_ids, label_names, sources):
  """Tidy rows of one unit: ``predicted [clips, snrs]`` (positions in ``target_ids`` and
  ``label_names``)."""
  rows = []
  for column, snr in enumerate(snrs):
    for record, guess, source in zip(records, predicted[:, column], sources):
      predicted_target = target_ids[int(guess)]
      rows.append({
          "model": model_name, "noise": unit.name, "realisation": unit.realisation,
          "snr_db": store.format_snr(snr), "fold": record.fold, "file": record.filename,
          "target": record.target, "target_name": record.category,
          "predicted": predicted_target, "predicted_name": label_names[int(guess)],
          "noise_source": source})
  return rows


def versions() -> dict:
  found = {"python": platform.python_version()}
  for package in ("jax", "jaxlib", "flax", "numpy", "scipy", "jaxnoise"):
    try:
      found[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      found[package] = "not installed"
  return found


@dataclasses.dataclass
class Inputs:
  """What a sweep (and its report) reads besides the model."""
  selection: data_selection.Selection  # the clips of the chosen classes and the skipped files
  tested: list         # the test clips, sorted by (fold, file name)
  label_names: tuple   # the classes decided among
  target_ids: tuple    # their positions in the source's class list
  noise_types: list
  inference: bool = False  # tested clips are config.sweep.inference_root's, whatever the folds
  label_map: dict | None = None  # config.model.label_map for AudioSet heads (None: ESC-50's)


def resolve_inputs(config) -> Inputs:
  """The data and noises of ``config`` (no audio decoded yet)."""
  if config.sweep.get("inference_root", ""):
    # The model's classes are settled once it is loaded (inference_classes); until then every
    # class of the set is tested, so that every clip is screened and looked up.
    clip_set = inference_set(config)
    chosen = data_selection.select(config, clip_set,
                                   classes=sorted({c.category for c in clip_set.clips}))
    tested, inference = sorted(chosen.records, key=data_sources.sort_key), True
  else:
    chosen, tested = test_records(config, data_sources.read_source(config.data))
    inference = False
  noise_entries = tuple(config.sweep.noises) + tuple(config.sweep.noise_paths)
  noise_types = noise_lib.parse_noises(
      noise_entries, records=chosen.clip_set.clips, data_root=chosen.clip_set.where,
      esc50_noise_dirs=tuple(config.sweep.esc50_noise_dirs), tested_classes=chosen.label_names,
      colored_generator=config.sweep.colored_generator)
  label_map = None
  if config.model.get("label_map", ""):
    label_map = label_map_lib.load(config.model.label_map)
    for name in chosen.label_names:  # the error of a missing label before any work
      zero_shot.audioset_indices(name, label_map)
  return Inputs(chosen, tested, chosen.label_names, chosen.target_ids, noise_types, inference,
                label_map)


def make_groups(models, tested, *, own_folds: bool = True) -> list[Group]:
  """Each model with the test clips it may classify (its own fold for a trained fold model,
  unless ``own_folds`` is False: an inference set is new to every model)."""
  groups = []
  for swept in models:
    records = [r for r in tested
               if swept.folds is None or not own_folds or r.fold in swept.folds]
    if records:
      prefix = "all" if swept.folds is None else "fold" + "-".join(map(str, swept.folds))
      groups.append(Group(swept, records, prefix))
  if not groups:
    raise ConfigError(f"the trained models' folds {[m.folds for m in models]} hold none of the "
                      f"test clips ({sorted({r.fold for r in tested})})")
  return groups


def unit_mixes(group, unit, snrs) -> int:
  """Clip x SNR mixes of one unit of ``group`` (the clean pass has one 'SNR')."""
  return len(group.records) * (1 if unit.noise is None else len(snrs))


def log_work(groups, units, done, inputs, snrs, precision: str) -> int:
  """Logs the grid about to be swept and its FLOPs (XLA's cost analysis of each model on one
  clip, lowered only); returns the clip x SNR mixes still to compute."""
  noises = len(inputs.noise_types)
  total = sum(unit_mixes(g, u, snrs) for g in groups for u in units)
  remaining = sum(unit_mixes(g, u, snrs) for g, flags in zip(groups, done)
                  for u, finished in zip(units, flags) if not finished)
  flops = sum(cost.clip_flops(g.model.spec, g.model.variables, compiled=False)[0]
              * sum(unit_mixes(g, u, snrs) for u, finished in zip(units, flags) if not finished)
              for g, flags in zip(groups, done))
  logging.info("sweep: %d model(s) x %d clips (folds %s) x (clean pass + %d unit(s) of %d "
               "noise(s) x %d SNRs) = %d clip x SNR mixes, %d still to compute: %.3g TFLOP (XLA "
               "cost analysis), precision %s", len(groups), len(inputs.tested),
               sorted({r.fold for r in inputs.tested}), len(units) - 1, noises, len(snrs), total,
               remaining, flops / 1e12, precision)
  return remaining


def sweep_group(config, group, units, done, inputs, mesh, snrs, unit_store,
                progress: progress_lib.Progress) -> list[dict]:
  """Computes (and, on process 0, stores) the units of ``group`` not ``done`` yet; returns timings.

  ``progress`` advances by every chunk of clip x SNR mixes computed.
  """
  spec = dataclasses.replace(group.model.spec, precision=str(config.sweep.precision))
  readout = readout_lib.make_readout(spec.labels, inputs.label_names, inputs.target_ids,
                                     inputs.label_map)
  identifiers = [f"{group.prefix}-{unit.identifier}" for unit in units]
  if done.all():
    logging.info("%s: every unit already done", group.model.name)
    return []
  load_started = time.time()
  policy = config.data.get("clip_policy", "first")
  clips = clip_loading.load_set([r.path for r in group.records], spec, policy,
                                config.data.cache_dir or None,
                                convert=bool(config.data.convert_audio))
  clip_devices = mesh.shape[sharding.CLIP_AXIS]
  chunk = distributed.round_up(min(int(config.sweep.chunk_clips), len(group.records)),
                               clip_devices)
  snr_batch = snr_batch_for(int(config.sweep.snr_batch), jax.devices()[0].platform,
                            chunk // clip_devices)
  engine = engine_lib.SweepEngine(spec, readout, group.model.variables, clips, mesh,
                                  chunk_clips=chunk, snr_batch=snr_batch,
                                  with_logits=bool(config.sweep.save_logits),
                                  window_samples=spec.clip_samples if policy == "windows" else 0)
  maker = noise_lib.NoiseMaker(engine, [r.filename for r in group.records], int(config.seed),
                               bool(config.sweep.fresh_noise_per_clip))
  logging.info("%s: %d clips at %d Hz on a %s mesh (%d process(es)), %d clips per call, %s SNRs "
               "per network call; loaded in %.1f s", group.model.name, len(group.records),
               spec.sample_rate, dict(mesh.shape), jax.process_count(), engine.chunk,
               snr_batch or "all", time.time() - load_started)
  silent = np.flatnonzero(engine.clip_powers() <= 0)
  if silent.size:
    logging.warning("%d clip(s) have no power in the band %s and get no noise: %s", silent.size,
                    spec.band, [group.records[i].filename for i in silent[:5]])
  maker.load_recordings([unit for unit, finished in zip(units, done) if not finished])
  targets = np.asarray([r.target for r in group.records])
  timings = []
  for unit, identifier, finished in zip(units, identifiers, done):
    if finished:
      continue
    started = time.time()
    noise_for_chunk, per_clip = maker.for_unit(unit)
    unit_snrs = (CLEAN_SNR,) if unit.noise is None else snrs
    predicted, logits = engine.run(
        noise_for_chunk, unit_snrs, per_clip_noise=per_clip,
        on_chunk=lambda clips, name=unit.name: progress.update(
            progress.done + clips * len(unit_snrs), f"{group.prefix}/{name}"))
    seconds = time.time() - started
    sources = maker.sources(unit)
    if unit.noise is not None:
      for index in silent:
        sources[index] = SILENT_CLIP_SOURCE
    rows = unit_rows(group.model.name, group.records, unit,
                     (None,) if unit.noise is None else snrs, predicted, inputs.target_ids,
                     inputs.label_names, sources)
    if distributed.is_writer():
      unit_store.save(identifier, rows, logits)
    timings.append({"unit": identifier, "seconds": seconds, "mixes": int(predicted.size)})
    accuracies = np.mean(np.asarray(inputs.target_ids)[predicted] == targets[:, None], axis=0)
    logging.info("%s %-16s r%d: %5d clip x SNR in %6.1f s (%.1f/s); accuracy %s", group.prefix,
                 unit.name, unit.realisation, predicted.size, seconds,
                 predicted.size / max(seconds, 1e-9), " ".join(f"{a:.2f}" for a in accuracies))
  return timings


SEED_DERIVATION = {
    "colored_noise": "jax.random.key(seed) for realisation 0, fold_in(key(seed), r) for "
                     "realisation r; with fresh_noise_per_clip, clip c gets fold_in(<realisation "
                     "key>, crc32(file name of c) & 0x7fffffff)",
    "recorded_noise": "realisation r = the r-th recording of the type (sorted by path); with "
                      "fresh_noise_per_clip, the clip at position i gets recording (i + r) mod n",
    "trained_models": "models[i].source.seed and models[i].source.random_draws: the training's "
                      "seed and the draws derived from it (initial variables, data order, "
                      "augmentation and dropout)"}


def run(config, workdir) -> dict:
  """Runs the sweep of ``config`` into ``workdir`` (module doc); returns a summary dict.

  Raises:
    JaxnoiseError: bad settings, missing data or checkpoints, each with a message saying what to fix.
  """
  started = time.time()
  check_seed(config)
  snrs = check_sweep_config(config.sweep)
  distributed.initialize(config.distributed)
  inputs = resolve_inputs(config)
  units = noise_lib.make_units(inputs.noise_types, int(config.sweep.realisations))
  models = model_lib.load_models(config, workdir)
  if inputs.inference:
    inputs = inference_classes(inputs, models)
  groups = make_groups(models, inputs.tested, own_folds=not inputs.inference)
  for group in groups:  # a tested class that no output scores stops the sweep before any work
    readout_lib.make_readout(group.model.spec.labels, inputs.label_names, inputs.target_ids,
                             inputs.label_map)
  mesh = sharding.make_mesh(len(snrs), int(config.sweep.snr_devices),
                            int(config.sweep.chunk_clips))
  fingerprint = {
      "models": [{"name": g.model.name, "folds": g.model.folds,
                  "variables_sha256": g.model.provenance["variables_sha256"]} for g in groups],
      "clips": [r.filename for r in inputs.tested], "target_ids": list(inputs.target_ids),
      "clip_policy": str(config.data.get("clip_policy", "first")),
      "noises": [noise.describe() for noise in inputs.noise_types], "snrs": list(snrs),
      "realisations": int(config.sweep.realisations),
      "fresh_noise_per_clip": bool(config.sweep.fresh_noise_per_clip), "seed": int(config.seed),
      "save_logits": bool(config.sweep.save_logits), "precision": str(config.sweep.precision)}
  unit_store = store.UnitStore(workdir, fingerprint)
  if distributed.is_writer():
    unit_store.prepare()
  done = [distributed.agree(np.asarray([unit_store.is_done(f"{g.prefix}-{u.identifier}")
                                        for u in units])) for g in groups]
  remaining = log_work(groups, units, done, inputs, snrs, str(config.sweep.precision))
  progress = progress_lib.Progress("sweep", remaining, "mixes")
  timings = []
  for group, flags in zip(groups, done):
    timings += sweep_group(config, group, units, flags, inputs, mesh, snrs, unit_store, progress)
  summary = {"workdir": str(workdir), "units": len(units) * len(groups),
             "computed": len(timings), "seconds": time.time() - started}
  if not distributed.is_writer():
    return summary
  rows = [row for group in groups for unit in units
          for row in unit_store.load(f"{group.prefix}-{unit.identifier}")]
  metadata = {
      "config": config.to_dict(), "versions": versions(),
      "models": [dict(g.model.provenance, name=g.model.name, arch=g.model.spec.arch,
                      folds=g.model.folds) for g in groups],
      "readout": {g.model.name: readout_lib.make_readout(
          g.model.spec.labels, inputs.label_names, inputs.target_ids, inputs.label_map).describe()
                  for g in groups},
      "precision": str(config.sweep.precision),
      "seeds": {"seed": int(config.seed), **SEED_DERIVATION},
      "noises": [noise.describe() for noise in inputs.noise_types],
      "units": [{"noise": u.name, "realisation": u.realisation} for u in units],
      "devices": {"count": jax.device_count(), "processes": jax.process_count(),
                  "mesh": dict(mesh.shape), "platform": jax.devices()[0].platform},
      "timing": {"seconds": summary["seconds"], "units_computed": timings},
      "data_root": inputs.selection.clip_set.where, "clips": len(inputs.tested),
      "data": inputs.selection.describe(), "skipped_files": inputs.selection.skipped,
      "silent_clips": {g.model.name: sorted({row["file"] for row in rows
                                             if row["model"] == g.model.name
                                             and row["noise_source"] == SILENT_CLIP_SOURCE})
                       for g in groups}}
  data_selection.write_data_record(workdir, inputs.selection)
  store.write_tables(workdir, rows, accuracy.accuracy_table(store.to_columns(rows)), metadata)
  logging.info("wrote %s, %s and %s in %s (%.1f s)", store.RESULTS_FILE, store.ACCURACY_FILE,
               store.RUN_FILE, workdir, summary["seconds"])
  return summary
