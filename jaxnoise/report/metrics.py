"""Accuracy and robustness summaries of a sweep, from its tidy results table.

Pure numpy on columns (``{column: np.ndarray}``, one entry per row of ``results.csv``). Beside plain
accuracy and confusion matrices, three robustness summaries the upstream projects do not give:

- **area**: the area under accuracy-vs-SNR divided by the SNR range (trapezoid rule), i.e. the mean
  accuracy over the tested SNR range, in [0, 1];
- **half-accuracy SNR**: the SNR at which accuracy falls to half of the clean accuracy, by linear
  interpolation between grid points, scanning down from the highest SNR;
- **collapse rate**: the share of predictions on the single most predicted class at one SNR. 1/classes
  for a balanced classifier, 1.0 when every clip gets the same "default" class, which is how the
  study's models failed under strong noise.

``gain_table`` compares these summaries of each model with those of a baseline model, per noise.
"""
import math

import numpy as np

# The accuracy table is the sweep's product (accuracy.csv); the report reads these from here too.
from jaxnoise.sweep.accuracy import (  # pylint: disable=unused-import
    accuracy, accuracy_table, group_rows, mean_interval)

CLEAN = "clean"


def confusion_matrix(targets, predicted, classes) -> np.ndarray:
  """Counts ``[len(classes), len(classes)]``: row = true class, column = predicted class.

  Predictions outside ``classes`` are not counted (they cannot happen in a sweep, which only
  predicts among the tested classes).
  """
  position = {int(label): index for index, label in enumerate(classes)}
  matrix = np.zeros((len(classes), len(classes)), np.int64)
  for target, guess in zip(np.asarray(targets), np.asarray(predicted)):
    if int(guess) in position:
      matrix[position[int(target)], position[int(guess)]] += 1
  return matrix


def collapse_rate(predicted) -> float:
  """Share of the predictions ``[n]`` that fall on the most predicted class."""
  predicted = np.asarray(predicted)
  if predicted.size == 0:
    return math.nan
  _, counts = np.unique(predicted, return_counts=True)
  return float(counts.max() / predicted.size)


def snr_area(snrs, accuracies) -> float:
  """Trapezoid area under accuracy over SNR, divided by the SNR range (mean accuracy over it)."""
  order = np.argsort(snrs)
  snrs = np.asarray(snrs, np.float64)[order]
  accuracies = np.asarray(accuracies, np.float64)[order]
  if snrs.size == 1:
    return float(accuracies[0])
  area = np.sum((accuracies[1:] + accuracies[:-1]) / 2 * np.diff(snrs))
  return float(area / (snrs[-1] - snrs[0]))


def half_accuracy_snr(snrs, accuracies, clean_accuracy: float) -> float:
  """The SNR (dB) at which accuracy falls to half of ``clean_accuracy``.

  Scanning down from the highest SNR, the first grid point with accuracy <= clean/2 and the point
  above it are interpolated linearly. Returns -inf when accuracy stays above half over the whole
  grid (robust down to its lowest SNR) and +inf when it is already at or below half at the highest
  SNR (the crossing lies above the grid).
  """
  order = np.argsort(snrs)[::-1]
  snrs = np.asarray(snrs, np.float64)[order]
  accuracies = np.asarray(accuracies, np.float64)[order]
  threshold = clean_accuracy / 2
  below = np.nonzero(accuracies <= threshold)[0]
  if below.size == 0:
    return -math.inf
  first = int(below[0])
  if first == 0:
    return math.inf
  upper_snr, upper_accuracy = snrs[first - 1], accuracies[first - 1]
  lower_snr, lower_accuracy = snrs[first], accuracies[first]
  fraction = (upper_accuracy - threshold) / (upper_accuracy - lower_accuracy)
  return float(upper_snr + fraction * (lower_snr - upper_snr))


def snr_value(text) -> float:
  """An ``snr_db`` cell as a float; the empty cell of clean rows is NaN."""
  return math.nan if text in ("", None) else float(text)


def robustness_table(accuracy_rows, columns) -> list[dict]:
  """Per (model, noise): clean accuracy, area, half-accuracy SNR and collapse rate per SNR.

  Args:
    accuracy_rows: rows of ``accuracy.csv`` (as ``accuracy_table`` returns or read back).
    columns: the results columns (for the collapse rates, which need the predictions).

  Returns:
    Rows with ``model, noise, clean_accuracy, area, half_accuracy_snr_db`` plus
    ``collapse_at_<snr>dB`` columns and ``max_collapse``.
  """
  clean = {row["model"]: float(row["accuracy"]) for row in accuracy_rows
           if row["noise"] == CLEAN}
  curves = {}
  for row in accuracy_rows:
    if row["noise"] != CLEAN:
      curves.setdefault((row["model"], row["noise"]), []).append(
          (snr_value(row["snr_db"]), float(row["accuracy"])))
  predictions = group_rows(columns, ("model", "noise", "snr_db"))
  table = []
  for (model, noise), points in curves.items():
    points.sort()
    snrs = [snr for snr, _ in points]
    accuracies = [value for _, value in points]
    clean_accuracy = clean.get(model, math.nan)
    row = {"model": model, "noise": noise, "clean_accuracy": clean_accuracy,
           "area": snr_area(snrs, accuracies),
           "half_accuracy_snr_db": half_accuracy_snr(snrs, accuracies, clean_accuracy)}
    collapses = []
    for snr in snrs:
      rows = next(indices for key, indices in predictions.items()
                  if key[0] == model and key[1] == noise and snr_value(key[2]) == snr)
      collapses.append(collapse_rate(columns["predicted"][rows]))
      row[f"collapse_at_{snr:g}dB"] = collapses[-1]
    row["max_collapse"] = max(collapses)
    table.append(row)
  return table


GAIN_COLUMNS = ("model", "baseline", "noise", "clean_accuracy_change", "area_change",
                "half_accuracy_snr_db", "baseline_half_accuracy_snr_db",
                "half_accuracy_snr_shift_db", "lowest_snr_db", "collapse_at_lowest_snr",
                "baseline_collapse_at_lowest_snr", "collapse_change")


def _collapse_snrs(row) -> dict:
  """``{snr: collapse rate}`` of a robustness row's ``collapse_at_<snr>dB`` columns."""
  prefix, suffix = "collapse_at_", "dB"
  return {float(key[len(prefix):-len(suffix)]): float(value) for key, value in row.items()
          if key.startswith(prefix) and key.endswith(suffix)}


def gain_table(robustness_rows, baseline: str) -> list[dict]:
  """What each model gains over ``baseline`` per noise, from ``robustness_table`` rows.

  Changes are model minus baseline: clean accuracy, area (mean accuracy over the SNR range), the
  shift of the half-accuracy SNR (negative: the model keeps half its clean accuracy down to a lower
  SNR, i.e. is more robust; NaN when either lies outside the grid, whose side the two
  ``half_accuracy_snr_db`` columns show) and the collapse rate at the lowest SNR both curves have.
  Noises the baseline was not swept with are left out.
  """
  base = {row["noise"]: row for row in robustness_rows if row["model"] == baseline}
  table = []
  for row in robustness_rows:
    reference = base.get(row["noise"])
    if row["model"] == baseline or reference is None:
      continue
    mine, theirs = _collapse_snrs(row), _collapse_snrs(reference)
    lowest = min(set(mine) & set(theirs), default=math.nan)
    half, base_half = row["half_accuracy_snr_db"], reference["half_accuracy_snr_db"]
    collapse = mine.get(lowest, math.nan)
    base_collapse = theirs.get(lowest, math.nan)
    table.append({
        "model": row["model"], "baseline": baseline, "noise": row["noise"],
        "clean_accuracy_change": row["clean_accuracy"] - reference["clean_accuracy"],
        "area_change": row["area"] - reference["area"],
        "half_accuracy_snr_db": half, "baseline_half_accuracy_snr_db": base_half,
        "half_accuracy_snr_shift_db": (half - base_half if math.isfinite(half)
                                       and math.isfinite(base_half) else math.nan),
        "lowest_snr_db": lowest, "collapse_at_lowest_snr": collapse,
        "baseline_collapse_at_lowest_snr": base_collapse,
        "collapse_change": collapse - base_collapse})
  return table
