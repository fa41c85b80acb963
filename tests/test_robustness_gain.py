"""The robustness gain table and figure against hand-computed values on a synthetic pair of runs."""
import math

import ml_collections
import numpy as np
import pytest

from jaxnoise.errors import ConfigError
from jaxnoise.report import metrics, page, plots
from jaxnoise.sweep import store

TARGETS = [1, 2, 3, 4]
# (model, snr cell, predictions of the four clips); '' is the clean pass.
PREDICTIONS = [
    ("base", "", [1, 2, 3, 4]),       # clean 1.0
    ("base", "10", [1, 2, 3, 9]),     # 0.75
    ("base", "0", [1, 2, 9, 9]),      # 0.5
    ("base", "-10", [9, 9, 9, 9]),    # 0.0, collapse 1.0
    ("aug", "", [1, 2, 3, 9]),        # clean 0.75
    ("aug", "10", [1, 2, 3, 9]),      # 0.75
    ("aug", "0", [1, 2, 3, 9]),       # 0.75
    ("aug", "-10", [1, 9, 9, 7]),     # 0.25, collapse 0.5
]


def synthetic_columns():
  rows = []
  for model, snr, predicted in PREDICTIONS:
    for clip, (target, guess) in enumerate(zip(TARGETS, predicted)):
      rows.append({"model": model, "noise": "clean" if snr == "" else "pink", "realisation": 0,
                   "snr_db": snr, "file": f"clip{clip}.wav", "target": target,
                   "predicted": guess})
  return {name: np.asarray([row[name] for row in rows]) for name in rows[0]}


def test_gain_table_equals_hand_computed_values():
  columns = synthetic_columns()
  accuracy_rows = metrics.accuracy_table(columns)
  robustness = metrics.robustness_table(accuracy_rows, columns)
  (gain,) = metrics.gain_table(robustness, "base")
  # By hand: areas (trapezoid over -10..10 dB, / 20 dB) base (0+.5)/2*10 + (.5+.75)/2*10 = 8.75
  # -> 0.4375, aug (.25+.75)/2*10 + (.75+.75)/2*10 = 12.5 -> 0.625. Half accuracy: base crosses
  # 0.5 at 0 dB exactly; aug crosses 0.375 between 0 dB (0.75) and -10 dB (0.25) at -7.5 dB.
  expected = {"model": "aug", "baseline": "base", "noise": "pink",
              "clean_accuracy_change": -0.25, "area_change": 0.1875,
              "half_accuracy_snr_db": -7.5, "baseline_half_accuracy_snr_db": 0.0,
              "half_accuracy_snr_shift_db": -7.5, "lowest_snr_db": -10.0,
              "collapse_at_lowest_snr": 0.5, "baseline_collapse_at_lowest_snr": 1.0,
              "collapse_change": -0.5}
  assert set(gain) == set(metrics.GAIN_COLUMNS)
  for key, value in expected.items():
    wanted = pytest.approx(value, abs=1e-12) if isinstance(value, float) else value
    assert gain[key] == wanted, key


def test_shift_is_nan_when_a_crossing_lies_outside_the_grid():
  rows = [{"model": "base", "noise": "pink", "clean_accuracy": 1.0, "area": 0.5,
           "half_accuracy_snr_db": -math.inf, "collapse_at_-10dB": 0.3},
          {"model": "aug", "noise": "pink", "clean_accuracy": 1.0, "area": 0.5,
           "half_accuracy_snr_db": -4.0, "collapse_at_-10dB": 0.3}]
  (gain,) = metrics.gain_table(rows, "base")
  assert math.isnan(gain["half_accuracy_snr_shift_db"])
  assert gain["baseline_half_accuracy_snr_db"] == -math.inf


def test_gain_baseline_and_figure(tmp_path):
  columns = synthetic_columns()
  accuracy_rows = metrics.accuracy_table(columns)
  other = tmp_path / "baseline_run"
  store.atomic_write_csv(other / store.ACCURACY_FILE, list(accuracy_rows[0]),
                         [row for row in accuracy_rows if row["model"] == "base"])
  report = ml_collections.ConfigDict({"compare_workdirs": (), "baseline_model": ""})
  assert page.gain_baseline(report, accuracy_rows) is None
  report.compare_workdirs = (str(other),)
  assert page.gain_baseline(report, accuracy_rows) == "base"
  report.baseline_model = "nope"
  with pytest.raises(ConfigError, match=r"baseline_model='nope' is none of the compared models"):
    page.gain_baseline(report, accuracy_rows)
  path = plots.plot_gain(accuracy_rows, "base", tmp_path / "gain.png")
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
