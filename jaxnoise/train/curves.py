"""What training writes for people: loss/accuracy curves (CSV + PNG) and the per-fold table."""
import csv
import io
import math
import pathlib

from jaxnoise.runtime import files

CURVE_COLUMNS = ("step", "epoch", "learning_rate", "train_loss", "train_accuracy", "test_loss",
                 "test_accuracy")


def read_curve(path) -> list[dict]:
  """Rows of a curves CSV as dicts of floats (NaN where a value was not measured)."""
  path = pathlib.Path(path)
  if not path.is_file():
    return []
  with open(path, newline="", encoding="utf-8") as handle:
    return [{k: (float(v) if v != "" else math.nan) for k, v in row.items()}
            for row in csv.DictReader(handle)]


def write_curve(path, rows):
  """Writes the whole curve (small: one row per logged step), replacing any older file."""
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=CURVE_COLUMNS)
  writer.writeheader()
  for row in rows:
    writer.writerow({k: _format(row.get(k, math.nan)) for k in CURVE_COLUMNS})
  files.atomic_write_text(path, buffer.getvalue())


def _format(value) -> str:
  """Empty for unmeasured values; integers plainly; floats with every digit (exact round trip)."""
  if value is None or math.isnan(float(value)):
    return ""
  value = float(value)
  return str(int(value)) if value.is_integer() else repr(value)


def plot_curve(rows, path, title: str):
  """Loss and accuracy against step, train and test, as a PNG."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 3.6))
  for axis, metric in ((loss_axis, "loss"), (accuracy_axis, "accuracy")):
    for split, style in (("train", "-"), ("test", "o-")):
      points = [(r["step"], r[f"{split}_{metric}"]) for r in rows
                if not math.isnan(r.get(f"{split}_{metric}", math.nan))]
      if points:
        steps, values = zip(*points)
        axis.plot(steps, values, style, label=split, markersize=3)
    axis.set_xlabel("step")
    axis.set_ylabel(metric)
    axis.grid(alpha=0.3)
    axis.legend()
  accuracy_axis.set_ylim(0, 1)
  figure.suptitle(title)
  figure.tight_layout()
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", dpi=100)
  plt.close(figure)
  files.atomic_write_bytes(path, buffer.getvalue())


def write_fold_table(results: dict, directory, model_name: str):
  """The study's "accuracy per fold" table as ``accuracy_per_fold.{csv,md}``; returns the mean.

  Args:
    results: ``{test_fold: {'accuracy', 'test_clips', 'train_clips', ...}}``.
  """
  directory = pathlib.Path(directory)
  folds = sorted(results)
  accuracies = [results[f]["accuracy"] for f in folds]
  mean = sum(accuracies) / len(accuracies) if accuracies else math.nan
  columns = ("model", "test_fold", "train_clips", "test_clips", "accuracy")
  rows = [dict(zip(columns, (model_name, fold, results[fold]["train_clips"],
                             results[fold]["test_clips"], f"{results[fold]['accuracy']:.6f}")))
          for fold in folds]
  rows.append(dict(zip(columns, (model_name, "mean", "", "", f"{mean:.6f}"))))
  files.atomic_write_csv(directory / "accuracy_per_fold.csv", columns, rows)
  lines = [f"| model | {' | '.join(f'fold {f}' for f in folds)} | mean |",
           "|---|" + "---:|" * (len(folds) + 1),
           f"| {model_name} | " + " | ".join(f"{100 * a:.1f}%" for a in accuracies)
           + f" | {100 * mean:.1f}% |", "",
           "Test clips per fold: " + ", ".join(f"fold {f}: {results[f]['test_clips']}"
                                               for f in folds) + "."]
  files.atomic_write_text(directory / "accuracy_per_fold.md", "\n".join(lines) + "\n")
  return mean
