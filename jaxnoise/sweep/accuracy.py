"""``accuracy.csv`` from the sweep's tidy rows: accuracy per (model, noise, SNR) over realisations.

Pure numpy on columns (``{column: np.ndarray}``, one entry per row of ``results.csv``). The report's
robustness summaries (``jaxnoise.report.metrics``) build on these.
"""
import math

import numpy as np
import scipy.stats


def accuracy(targets, predicted) -> float:
  """Share of ``predicted == targets`` (both ``[n]``); NaN for no rows."""
  targets, predicted = np.asarray(targets), np.asarray(predicted)
  return float(np.mean(targets == predicted)) if targets.size else math.nan


def mean_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
  """Mean of ``values`` and its Student-t ``confidence`` interval; NaN bounds for one value."""
  values = np.asarray(values, np.float64)
  mean = float(values.mean())
  if values.size < 2:
    return mean, math.nan, math.nan
  half_width = (scipy.stats.t.ppf(0.5 + confidence / 2, values.size - 1)
                * values.std(ddof=1) / math.sqrt(values.size))
  return mean, mean - float(half_width), mean + float(half_width)


def group_rows(columns, keys):
  """``{key tuple: row indices}`` for the distinct values of ``keys``, in order of first appearance."""
  groups = {}
  for index, key in enumerate(zip(*(columns[name] for name in keys))):
    groups.setdefault(key, []).append(index)
  return {key: np.asarray(rows) for key, rows in groups.items()}


def accuracy_table(columns) -> list[dict]:
  """The rows of ``accuracy.csv`` from the results ``columns``.

  One row per (model, noise, snr_db): ``accuracy`` is the mean over noise realisations of each
  realisation's accuracy, ``n`` the number of predictions it pools (clips x realisations),
  ``realisations`` how many there were, and ``ci95_low``/``ci95_high`` the 95% Student-t interval of
  that mean (empty for one realisation), so the K-realisation protocol reports its spread.
  """
  table = []
  for (model, noise, snr), rows in group_rows(columns, ("model", "noise", "snr_db")).items():
    per_realisation = group_rows({name: columns[name][rows] for name in columns}, ("realisation",))
    scores = [accuracy(columns["target"][rows][subset], columns["predicted"][rows][subset])
              for subset in per_realisation.values()]
    mean, low, high = mean_interval(scores)
    table.append({"model": model, "noise": noise, "snr_db": snr, "accuracy": mean,
                  "n": int(rows.size), "realisations": len(scores),
                  "ci95_low": low, "ci95_high": high})
  return table
