"""The report's tables: nominal noise power per model band, model complexity, accuracy and robustness.

Every table is written as CSV (for tools) and rendered as Markdown (for the summary page).
"""
import math

import jax
import numpy as np

from jaxnoise import noise as noise_lib
from jaxnoise.data import esc50
from jaxnoise.models import cost
from jaxnoise.sweep import noises as sweep_noises
from jaxnoise.sweep import store


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
    sources = {noise.name: (f"{noise.color} seed {seed}" if noise.color
                            else str(noise.recordings[0])) for noise in noise_types}
    for row in noise_lib.nominal_noise_power(noises, sources, spec.sample_rate, [spec.band]):
      rows.append({"model": swept.name, **row})
  return rows


NOISE_POWER_COLUMNS = ("model", "noise", "sample_rate", "fmin", "fmax", "band_power",
                       "band_power_db", "source")


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
