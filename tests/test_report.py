"""Robustness metrics against hand-computed values, and the report written from a synthetic sweep."""
import json
import math
import sys

import jax
import numpy as np
import pytest

from conftest import REPO_ROOT
from jaxnoise.models import mobilenet, registry, store as model_store
from jaxnoise.report import metrics, page, plots, tables
from jaxnoise.runtime import files
from jaxnoise.sweep import store

if str(REPO_ROOT) not in sys.path:
  sys.path.insert(0, str(REPO_ROOT))
from configs import base  # pylint: disable=wrong-import-position

T_975_ONE_DOF = 12.706204736174698  # Student t, 97.5% quantile, 1 degree of freedom


def test_accuracy_confusion_and_collapse():
  assert metrics.accuracy([1, 2, 3], [1, 0, 3]) == pytest.approx(2 / 3)
  assert math.isnan(metrics.accuracy([], []))
  np.testing.assert_array_equal(
      metrics.confusion_matrix([20, 20, 21, 21], [20, 21, 21, 21], (20, 21)), [[1, 1], [0, 2]])
  assert metrics.collapse_rate([5, 5, 5, 7]) == 0.75
  assert metrics.collapse_rate([1, 2, 3, 4]) == 0.25
  assert math.isnan(metrics.collapse_rate([]))


def test_area_and_half_accuracy_snr():
  # Trapezoid: ((0.2 + 0.6) / 2 * 10 + (0.6 + 1.0) / 2 * 10) / 20 = 0.6, whatever the input order.
  assert metrics.snr_area([-10, 0, 10], [0.2, 0.6, 1.0]) == pytest.approx(0.6)
  assert metrics.snr_area([10, -10, 0], [1.0, 0.2, 0.6]) == pytest.approx(0.6)
  assert metrics.snr_area([5], [0.3]) == 0.3
  # Clean 0.8 -> half 0.4, crossed between 0 dB (0.5) and -10 dB (0.3): 0 - 10 * 0.1 / 0.2 = -5.
  assert metrics.half_accuracy_snr([-20, -10, 0, 10], [0.1, 0.3, 0.5, 0.7], 0.8) == pytest.approx(-5)
  assert metrics.half_accuracy_snr([-10, 0, 10], [0.1, 0.4, 0.7], 0.8) == pytest.approx(0)
  assert metrics.half_accuracy_snr([-10, 0, 10], [0.5, 0.6, 0.7], 0.8) == -math.inf
  assert metrics.half_accuracy_snr([-10, 0, 10], [0.1, 0.2, 0.3], 0.8) == math.inf


def test_mean_interval_and_accuracy_table():
  mean, low, high = metrics.mean_interval([0.5, 0.7])
  half_width = T_975_ONE_DOF * np.std([0.5, 0.7], ddof=1) / math.sqrt(2)
  assert (mean, low, high) == pytest.approx((0.6, 0.6 - half_width, 0.6 + half_width))
  columns = store.to_columns([
      {"model": "m", "noise": "pink", "realisation": r, "snr_db": "0", "fold": 4, "file": f,
       "target": 20, "target_name": "crying_baby", "predicted": p, "predicted_name": "",
       "noise_source": ""}
      for r, f, p in [(0, "a", 20), (0, "b", 21), (1, "a", 20), (1, "b", 20)]])
  (row,) = metrics.accuracy_table(columns)
  assert (row["accuracy"], row["n"], row["realisations"]) == (0.75, 4, 2)
  half_width = T_975_ONE_DOF * np.std([0.5, 1.0], ddof=1) / math.sqrt(2)
  assert (row["ci95_low"], row["ci95_high"]) == pytest.approx((0.75 - half_width,
                                                                0.75 + half_width))


CLIPS = [("2-104168-A-32.wav", 2, 32), ("2-104475-A-37.wav", 2, 37), ("2-104476-A-37.wav", 2, 37),
         ("5-151085-A-20.wav", 5, 20), ("5-198411-E-20.wav", 5, 20)]


def synthetic_rows(model):
  """Clean and 10 dB: all right; white -10 dB: everything 'crying_baby' (20); dog -10 dB: the
  first three wrong."""
  rows = []
  cases = [("clean", None), ("white", -10), ("white", 10), ("esc50:dog", -10), ("esc50:dog", 10)]
  for noise, snr in cases:
    for index, (name, fold, target) in enumerate(CLIPS):
      predicted = target
      if noise == "white" and snr == -10:
        predicted = 20
      if noise == "esc50:dog" and snr == -10 and index < 3:
        predicted = 39
      rows.append({"model": model, "noise": noise, "realisation": 0,
                   "snr_db": store.format_snr(snr), "fold": fold, "file": name, "target": target,
                   "target_name": "", "predicted": predicted, "predicted_name": "",
                   "noise_source": ""})
  return rows


def write_synthetic_run(workdir, model, config):
  rows = synthetic_rows(model)
  accuracy_rows = metrics.accuracy_table(store.to_columns(rows))
  store.write_tables(workdir, rows, accuracy_rows,
                     {"config": config.to_dict(), "devices": {"count": 1},
                      "timing": {"seconds": 1.0}})


@pytest.fixture(scope="module")
def report(esc50_dir, noise_dir, tmp_path_factory):
  spec = registry.build_spec("mn", {"width": 0.1})
  variables = mobilenet.random_variables(spec)
  model_dir = model_store.save_model(tmp_path_factory.mktemp("model") / "tiny", spec, variables)
  config = base.get_config()
  config.model.checkpoint = str(model_dir)
  config.model.name = "tiny"
  config.data.root = str(esc50_dir)
  config.data.cache_dir = str(tmp_path_factory.mktemp("cache"))
  config.sweep.noises = ("white", "esc50:dog")
  config.sweep.esc50_noise_dirs = (str(noise_dir / "esc50"),)
  config.sweep.snrs = (-10, 10)
  config.sweep.folds = (2, 5)
  other = tmp_path_factory.mktemp("other")
  write_synthetic_run(other, "other", config)
  config.report.compare_workdirs = (str(other),)
  workdir = tmp_path_factory.mktemp("run")
  write_synthetic_run(workdir, "tiny", config)
  written = page.write_report(config, workdir)
  return workdir / page.REPORT_DIR, written, variables


def test_report_writes_every_figure_and_table(report):
  out_dir, written, _ = report
  expected = ["index.md", "index.html", "accuracy_vs_snr.png", "accuracy_vs_snr_white.png",
              "accuracy_vs_snr_esc50_dog.png", "spectrograms_tiny.png", "robustness.csv",
              "complexity.csv", "noise_power.csv", "accuracy_by_snr.csv", "robustness_gain.csv",
              "robustness_gain.png", "confusion/tiny_clean.png", "confusion/tiny_white_-10dB.png",
              "confusion/tiny_esc50_dog_-10dB.png"]
  for name in expected:
    assert (out_dir / name).is_file() and (out_dir / name).stat().st_size > 0, name
    if name.endswith(".png"):
      assert (out_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  # -25 and -10 dB both map to the grid's -10 dB; the compared model gets no confusion matrices.
  assert sorted(p.name for p in (out_dir / "confusion").iterdir()) == sorted(
      ["tiny_clean.png", "tiny_white_-10dB.png", "tiny_esc50_dog_-10dB.png"])
  markdown = (out_dir / "index.md").read_text()
  for link in expected[2:]:
    assert f"]({link})" in markdown or not link.endswith(".png"), link
  assert "| other | white |" in markdown and "| tiny | white |" in markdown
  assert "<table>" in (out_dir / "index.html").read_text()
  # The compared run is the baseline of the gain table: one row per noise for the other model.
  assert "## Robustness gain over other" in markdown
  gains = (out_dir / "robustness_gain.csv").read_text().splitlines()
  assert [line.split(",")[:3] for line in gains[1:]] == [["tiny", "other", "white"],
                                                         ["tiny", "other", "esc50:dog"]]


def test_robustness_table_values(report):
  out_dir, _, _ = report
  rows = {(r["model"], r["noise"]): r for r in files.read_csv(out_dir / "robustness.csv")}
  white = rows[("tiny", "white")]
  # Clean 1.0; white: 0.4 at -10 dB (2 of 5 clips are class 20), 1.0 at 10 dB.
  assert float(white["clean_accuracy"]) == 1.0
  assert float(white["area"]) == pytest.approx(0.7)
  assert float(white["half_accuracy_snr_db"]) == pytest.approx(10 - 20 * 0.5 / 0.6)
  assert float(white["collapse_at_-10dB"]) == 1.0
  assert float(white["collapse_at_10dB"]) == 0.4  # 37, 37 or 20, 20 of 5
  dog = rows[("tiny", "esc50:dog")]
  assert float(dog["collapse_at_-10dB"]) == 0.6  # three 39s
  assert float(dog["area"]) == pytest.approx((0.4 + 1.0) / 2)
  assert ("other", "white") in rows


def test_complexity_and_noise_power_tables(report):
  out_dir, _, variables = report
  (row,) = files.read_csv(out_dir / "complexity.csv")
  assert int(row["parameters"]) == sum(np.size(leaf) for leaf in
                                       jax.tree.leaves(variables["params"]))
  assert 0 < float(row["frontend_gflops"]) < float(row["gflops_per_clip"])
  power = {r["noise"]: r for r in files.read_csv(out_dir / "noise_power.csv")}
  assert set(power) == {"white", "esc50:dog"}
  assert (float(power["white"]["fmin"]), float(power["white"]["fmax"])) == (0.0, 15000.0)
  # Unit-variance white noise at 32 kHz puts 15000/16000 of its power below 15 kHz.
  assert float(power["white"]["band_power"]) == pytest.approx(15000 / 16000, rel=0.02)


def test_curves_and_markdown_helpers():
  rows = [{"model": "a", "noise": "clean", "snr_db": "", "accuracy": "0.9", "ci95_low": "",
           "ci95_high": ""},
          {"model": "a", "noise": "pink", "snr_db": "10", "accuracy": "0.8", "ci95_low": "0.7",
           "ci95_high": "0.9"},
          {"model": "a", "noise": "pink", "snr_db": "-10", "accuracy": "0.2", "ci95_low": "",
           "ci95_high": ""}]
  curves, clean = plots.curves_by_noise(rows)
  snrs, accuracy, low, _ = curves["pink"]["a"]
  np.testing.assert_array_equal(snrs, [-10, 10])
  np.testing.assert_array_equal(accuracy, [0.2, 0.8])
  assert math.isnan(low[0]) and low[1] == 0.7 and clean == {"a": 0.9}
  columns, pivot = tables.accuracy_pivot(rows)
  assert columns == ["model", "noise", "clean", "-10 dB", "10 dB"]
  assert pivot[1]["-10 dB"] == 0.2 and math.isnan(pivot[0]["10 dB"])
  assert tables.markdown(["x"], [{"x": -math.inf}]) == "| x |\n|---|\n| below grid |\n"
  assert json.dumps(tables.format_value(0.12345)) == '"0.123"'
