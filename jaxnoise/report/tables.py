"""The report's tables: nominal noise power per model band, model complexity, accuracy and robustness.

Every table is written as CSV (for tools) and rendered as Markdown (for the summary page).
"""
import math

import jax
import numpy as np

from jaxnoise import noise as noise_lib
from jaxnoise.audio import frontends
from jaxnoise.data import esc50
from jaxnoise.models import cost, htsat, mobilenet
from jaxnoise.report import metrics
from jaxnoise.data import noises as sweep_noises


def format_value(value, digits: int = 3) -> str:
  if isinstance(value, (float, np.floating)):
    if math.isnan(value):
      return ""
    if math.isinf(value):
      return "below grid" if value < 0 else "above grid"
    return f"{value:.{digits}f}"
  return str(value)


def markdown(columns, rows, digits: int = 3) -> str:
  """A GitHub-style Markdown table of dict ``rows``."""
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  for row in rows:
    lines.append("| " + " | ".join(format_value(row.get(c, ""), digits) for c in columns) + " |")
  return "\n".join(lines) + "\n"


def noise_source(noise, seed: int) -> str:
  """What the nominal realisation of a sweep noise is (the tables' ``source`` column)."""
  if noise.color:
    return f"{noise.color} ({noise.generator}) seed {seed}"
  return str(noise.recordings[0])


def noise_power_rows(noise_types, models, seed: int) -> list[dict]:
  """The nominal in-band power of each noise's nominal realisation in each model's band.

  The noise is drawn (colors) or loaded (recordings) at each model's own rate and clip length, as
  the sweep mixes it, and measured by ``jaxnoise.noise.nominal_noise_power``.
  """
  rows = []
  for swept in models:
    spec = swept.spec
    length = int(round(spec.sample_rate * esc50.CLIP_SECONDS))
    noises = {noise.name: sweep_noises.nominal_noise(noise, 0, seed, spec.sample_rate, length)
              for noise in noise_types}
    sources = {noise.name: noise_source(noise, seed) for noise in noise_types}
    for row in noise_lib.nominal_noise_power(noises, sources, spec.sample_rate, [spec.band]):
      rows.append({"model": swept.name, **row})
  return rows


NOISE_POWER_COLUMNS = ("model", "noise", "sample_rate", "fmin", "fmax", "band_power",
                       "band_power_db", "source")

# The study's models and their SNR bands (its Table 4.8), the columns of its Table 4.7.
STUDY_MODEL_BANDS = (("CNN10", frontends.TFNET_BAND), ("TFNet", frontends.TFNET_BAND),
                     ("mn40_as", mobilenet.BAND), ("HTS_AT", htsat.BAND))
# The study generated and mixed its noises at 44.1 kHz, 5-s clips (ESC-50's format).
STUDY_RATE = esc50.SAMPLE_RATE


def study_band_column(model: str, band) -> str:
  return f"{model} {band[0]:g}-{band[1]:g} Hz (mW)"


def study_noise_power_rows(noise_types, seed: int, model_bands=STUDY_MODEL_BANDS) -> list[dict]:
  """The study's Table 4.7: each noise's nominal in-band power in mW for every model's band, the
  noise drawn (colors, with their generator) or loaded (recordings) at 44.1 kHz and 5 s, as the
  study mixed it, and measured by ``jaxnoise.noise.nominal_noise_power``.

  Returns:
    One row per noise: ``noise``, ``source`` and one ``study_band_column`` per model.
  """
  noises = {noise.name: sweep_noises.nominal_noise(noise, 0, seed, STUDY_RATE,
                                                   esc50.CLIP_SAMPLES) for noise in noise_types}
  sources = {noise.name: noise_source(noise, seed) for noise in noise_types}
  bands = list(dict.fromkeys(tuple(map(float, band)) for _, band in model_bands))
  power = {(row["noise"], (row["fmin"], row["fmax"])): row["band_power"]
           for row in noise_lib.nominal_noise_power(noises, sources, STUDY_RATE, bands)}
  return [{"noise": name, "source": sources[name],
           **{study_band_column(model, band): 1e3 * power[name, tuple(map(float, band))]
              for model, band in model_bands}} for name in noises]


def study_noise_power_columns(model_bands=STUDY_MODEL_BANDS) -> tuple:
  return ("noise", *(study_band_column(model, band) for model, band in model_bands), "source")


INFERENCE_VS_TEST_COLUMNS = ("model", "test_folds", "test_clips", "test_accuracy", "swept_set",
                             "swept_clips", "clean_accuracy", "accuracy_loss_percent")


def inference_vs_test_rows(run_models, fold_results: dict, accuracy_rows,
                           inference_root: str = "") -> list[dict]:
  """The study's Table 4.5: per swept model, its test accuracy in training against the clean
  accuracy of the set the sweep swept, and the relative loss ``100 (test - clean) / test``.

  Args:
    run_models: ``run.json``'s ``models`` (name and test folds of each swept model).
    fold_results: ``{fold: result.json}`` of the workdir's training.
    accuracy_rows: the sweep's ``accuracy.csv`` rows: the clean row of each model gives its
      accuracy and, in ``n`` (one prediction per clip), the clips swept.
    inference_root: ``config.sweep.inference_root`` of the sweep, "" for the ESC-50 test folds.

  Returns:
    One row per model name whose folds all have a training result (models swept from a
    checkpoint have no test accuracy of this workdir and get no row). Several fold models of one
    name (model_fold 'all') pool their folds: the test accuracy is the clip-weighted mean, the
    accuracy of all their test clips together, as the pooled clean accuracy is.
  """
  folds_of = {}
  for model in run_models:
    folds_of.setdefault(model["name"], []).extend(model.get("folds") or [None])
  clean = {row["model"]: row for row in accuracy_rows if row["noise"] == metrics.CLEAN}
  rows = []
  for name, folds in folds_of.items():
    if None in folds or any(fold not in fold_results for fold in folds) or name not in clean:
      continue
    folds = sorted(folds)
    test_clips = sum(int(fold_results[fold]["test_clips"]) for fold in folds)
    test_accuracy = sum(float(fold_results[fold]["accuracy"]) * int(fold_results[fold]["test_clips"])
                        for fold in folds) / test_clips
    clean_accuracy = float(clean[name]["accuracy"])
    rows.append({
        "model": name, "test_folds": " ".join(map(str, folds)), "test_clips": test_clips,
        "test_accuracy": test_accuracy,
        "swept_set": (f"inference set {inference_root}" if inference_root else
                      "its ESC-50 test fold(s)"),
        "swept_clips": int(clean[name]["n"]), "clean_accuracy": clean_accuracy,
        "accuracy_loss_percent": (100.0 * (test_accuracy - clean_accuracy) / test_accuracy
                                  if test_accuracy > 0 else math.nan)})
  return rows


CURVE_METRICS = ("train_loss", "test_loss", "train_accuracy", "test_accuracy")


def training_curve_rows(curves: dict) -> list[dict]:
  """Loss and accuracy per step averaged over the trained folds, with their spread (the study's
  Figs 4.3-4.6).

  Args:
    curves: ``{fold: rows of fold{k}/curves.csv}`` (cells as text, empty where not measured).

  Returns:
    One row per logged step: ``step`` and, per metric of ``CURVE_METRICS``, ``_mean``, ``_min``,
    ``_max`` and ``_folds`` (how many folds measured it there: test metrics exist only every
    ``config.train.eval_every`` steps and at the end).
  """
  values = {}
  for rows in curves.values():
    for row in rows:
      step = int(float(row["step"]))
      for metric in CURVE_METRICS:
        if row.get(metric, "") not in ("", None):
          values.setdefault(step, {}).setdefault(metric, []).append(float(row[metric]))
  summary = []
  for step in sorted(values):
    row = {"step": step}
    for metric in CURVE_METRICS:
      measured = np.asarray(values[step].get(metric, [np.nan]))
      row.update({f"{metric}_mean": float(np.mean(measured)), f"{metric}_min": float(np.min(measured)),
                  f"{metric}_max": float(np.max(measured)),
                  f"{metric}_folds": int(np.isfinite(measured).sum())})
    summary.append(row)
  return summary


TRAINING_CURVE_COLUMNS = ("step",) + tuple(f"{metric}_{part}" for metric in CURVE_METRICS
                                           for part in ("mean", "min", "max", "folds"))


def complexity_row(name, spec, variables) -> dict:
  """Parameters and FLOPs per clip (frontend + network, batch 1, eval mode) of one model."""
  parameters = sum(int(np.size(leaf)) for leaf in jax.tree.leaves(variables.get("params", {})))
  total, frontend = cost.clip_flops(spec, variables)
  return {"model": name, "arch": spec.arch, "parameters": parameters,
          "gflops_per_clip": total / 1e9, "frontend_gflops": frontend / 1e9,
          "sample_rate": spec.sample_rate, "clip_seconds": spec.clip_seconds}


COMPLEXITY_COLUMNS = ("model", "arch", "parameters", "gflops_per_clip", "frontend_gflops",
                      "sample_rate", "clip_seconds")
ROBUSTNESS_COLUMNS = ("model", "noise", "clean_accuracy", "area", "half_accuracy_snr_db",
                      "max_collapse")


def accuracy_pivot(accuracy_rows) -> tuple[list, list]:
  """Accuracy as (model, noise) rows x SNR columns, for the page."""
  snrs = sorted({row["snr_db"] for row in accuracy_rows if row["snr_db"] != ""},
                key=float)
  table = {}
  for row in accuracy_rows:
    key = (row["model"], row["noise"])
    entry = table.setdefault(key, {"model": row["model"], "noise": row["noise"]})
    entry["clean" if row["snr_db"] == "" else f"{row['snr_db']} dB"] = float(row["accuracy"])
  columns = ["model", "noise"] + ([] if not any("clean" in e for e in table.values())
                                  else ["clean"]) + [f"{snr} dB" for snr in snrs]
  return columns, [{column: entry.get(column, math.nan) for column in columns}
                   for entry in table.values()]
