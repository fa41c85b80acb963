"""The study's figures from a sweep's tables (matplotlib, Agg backend, PNG written atomically).

- accuracy vs SNR for each noise, every model on the same axes, the clean accuracy of each model as
  a dashed reference line and, with several noise realisations, the 95% interval as a band;
- confusion matrices at chosen SNRs, rows and columns labelled with ESC-50 ids and names;
- the log-mel (the model's own frontend) of one clip, clean and mixed with each noise at one SNR.
"""
import io
import math
import pathlib
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from jaxnoise.report import metrics  # pylint: disable=wrong-import-position
from jaxnoise.runtime import files  # pylint: disable=wrong-import-position

DPI = 110


def slug(text: str) -> str:
  """A file-name-safe version of a noise or model name."""
  return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "unnamed"


def save(figure, path) -> pathlib.Path:
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", dpi=DPI)
  plt.close(figure)
  files.atomic_write_bytes(path, buffer.getvalue())
  return pathlib.Path(path)


def curves_by_noise(accuracy_rows):
  """``{noise: {model: (snrs, accuracy, low, high)}}`` and ``{model: clean accuracy}``."""
  curves, clean = {}, {}
  for row in accuracy_rows:
    if row["noise"] == metrics.CLEAN:
      clean[row["model"]] = float(row["accuracy"])
      continue
    curves.setdefault(row["noise"], {}).setdefault(row["model"], []).append(
        (metrics.snr_value(row["snr_db"]), float(row["accuracy"]),
         metrics.snr_value(row["ci95_low"]), metrics.snr_value(row["ci95_high"])))
  for per_model in curves.values():
    for model, points in per_model.items():
      per_model[model] = tuple(np.asarray(column) for column in zip(*sorted(points)))
  return curves, clean


def draw_accuracy(axes, per_model: dict, clean: dict, colors: dict, title: str):
  for model, (snrs, accuracy, low, high) in per_model.items():
    color = colors[model]
    axes.plot(snrs, accuracy, marker="o", markersize=3, color=color, label=model)
    if np.isfinite(low).any():
      axes.fill_between(snrs, low, high, color=color, alpha=0.2, linewidth=0)
    if model in clean:
      axes.axhline(clean[model], color=color, linestyle="--", linewidth=0.9)
  axes.set_title(title, fontsize=9)
  axes.set_ylim(-0.02, 1.02)
  axes.grid(True, alpha=0.3)


def model_colors(models) -> dict:
  """One tab10 color per model, in the order given."""
  palette = plt.get_cmap("tab10")
  return {model: palette(index % 10) for index, model in enumerate(models)}


def plot_accuracy_vs_snr(accuracy_rows, out_dir) -> dict:
  """One PNG per noise plus an overview grid; returns ``{'overview': path, noise: path}``."""
  out_dir = pathlib.Path(out_dir)
  curves, clean = curves_by_noise(accuracy_rows)
  models = sorted({model for per_model in curves.values() for model in per_model} | set(clean))
  colors = model_colors(models)
  written = {}
  for noise, per_model in curves.items():
    figure, axes = plt.subplots(figsize=(5.5, 3.8))
    draw_accuracy(axes, per_model, clean, colors,
                  f"accuracy vs SNR: {noise} (dashed: clean accuracy)")
    axes.set_xlabel("in-band SNR (dB)")
    axes.set_ylabel("accuracy")
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    written[noise] = save(figure, out_dir / f"accuracy_vs_snr_{slug(noise)}.png")
  written["overview"] = overview_figure(curves, clean, colors, models,
                                        out_dir / "accuracy_vs_snr.png")
  return written


def overview_figure(curves, clean, colors, models, path, title: str = "") -> pathlib.Path:
  """One panel per noise of ``curves`` (``curves_by_noise``), a legend of ``models`` on top."""
  columns = min(5, max(1, len(curves)))
  rows = max(1, math.ceil(len(curves) / columns))
  figure, grid = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.7 * rows), squeeze=False,
                              sharex=True, sharey=True)
  for axes, (noise, per_model) in zip(grid.flat, curves.items()):
    draw_accuracy(axes, per_model, clean, colors, noise)
  for axes in list(grid.flat)[len(curves):]:
    axes.axis("off")
  for axes in grid[-1]:
    axes.set_xlabel("SNR (dB)")
  for axes in grid[:, 0]:
    axes.set_ylabel("accuracy")
  handles = [plt.Line2D([], [], color=colors[m], marker="o", markersize=3) for m in models]
  figure.legend(handles, models, loc="upper center", ncol=min(4, len(models)), fontsize=8,
                title=title or None, title_fontsize=9)
  figure.tight_layout(rect=(0, 0, 1, 0.93 if not title else 0.9))
  return save(figure, path)


def plot_gain(accuracy_rows, baseline: str, path) -> pathlib.Path:
  """Accuracy vs SNR per noise of ``baseline`` and every other model, clean accuracy dashed."""
  curves, clean = curves_by_noise(accuracy_rows)
  curves = {noise: per_model for noise, per_model in curves.items() if baseline in per_model}
  models = [baseline] + sorted({m for per_model in curves.values() for m in per_model} - {baseline})
  colors = model_colors(models)
  return overview_figure(curves, clean, colors, models, path,
                         f"robustness gain over {baseline} (dashed: clean accuracy)")


def plot_confusion(matrix: np.ndarray, target_ids, names, title: str, path) -> pathlib.Path:
  """A confusion matrix (rows true, columns predicted) with 'id name' tick labels and counts."""
  labels = [f"{target} {name}" for target, name in zip(target_ids, names)]
  size = 2.5 + 0.32 * len(labels)
  figure, axes = plt.subplots(figsize=(size + 1.2, size))
  image = axes.imshow(matrix, cmap="Blues", vmin=0)
  axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
  axes.set_yticks(range(len(labels)), labels, fontsize=7)
  axes.set_xlabel("predicted")
  axes.set_ylabel("true")
  peak = matrix.max() if matrix.size else 0
  for (row, column), count in np.ndenumerate(matrix):
    if count:
      axes.text(column, row, str(count), ha="center", va="center", fontsize=6,
                color="white" if count > peak / 2 else "black")
  axes.set_title(title, fontsize=9)
  figure.colorbar(image, ax=axes, fraction=0.04)
  figure.tight_layout()
  return save(figure, path)


def plot_spectrograms(features, titles, suptitle: str, path) -> pathlib.Path:
  """Panels of ``features [panels, frames, bins]`` (time on x, bins upwards), one per title."""
  columns = min(4, len(titles))
  rows = math.ceil(len(titles) / columns)
  figure, grid = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.6 * rows), squeeze=False)
  low, high = np.percentile(features, 1), np.percentile(features, 99.5)
  for axes, panel, title in zip(grid.flat, features, titles):
    axes.imshow(np.asarray(panel).T, origin="lower", aspect="auto", cmap="magma", vmin=low,
                vmax=high)
    axes.set_title(title, fontsize=8)
    axes.set_xlabel("frame", fontsize=7)
    axes.set_ylabel("mel bin", fontsize=7)
    axes.tick_params(labelsize=6)
  for axes in list(grid.flat)[len(titles):]:
    axes.axis("off")
  figure.suptitle(suptitle, fontsize=9)
  figure.tight_layout()
  return save(figure, path)


def plot_training_curves(rows, title: str, path) -> pathlib.Path:
  """Loss and accuracy against iteration (``tables.training_curve_rows``): the mean over folds as a
  line, the lowest to highest fold shaded."""
  figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 3.6))
  for axes, quantity in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
    for split, style in (("train", "-"), ("test", "o-")):
      metric = f"{split}_{quantity}"
      points = [row for row in rows if row[f"{metric}_folds"]]
      if not points:
        continue
      steps = [row["step"] for row in points]
      line, = axes.plot(steps, [row[f"{metric}_mean"] for row in points], style, markersize=3,
                        label=f"{split} (mean of {max(row[f'{metric}_folds'] for row in points)} "
                              "folds)")
      axes.fill_between(steps, [row[f"{metric}_min"] for row in points],
                        [row[f"{metric}_max"] for row in points], color=line.get_color(),
                        alpha=0.2, linewidth=0)
    axes.set_xlabel("iteration")
    axes.set_ylabel(quantity)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
  accuracy_axes.set_ylim(0, 1)
  figure.suptitle(f"{title}: mean over folds, shaded from the lowest to the highest fold",
                  fontsize=9)
  figure.tight_layout()
  return save(figure, path)
