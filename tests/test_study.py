"""The study's protocol: which fold model is swept (config.sweep.model_fold) and its Table 4.5.

A synthetic run: three "trained" fold models (random tiny MobileNets saved where the 'train' mode
saves them, with hand-written test accuracies) on a tone dataset, swept and reported by launch.py.
"""
import csv
import json
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT
from jaxnoise import config_checks, preflight
from jaxnoise.data import esc50
from jaxnoise.errors import ConfigError
from jaxnoise.models import mobilenet, registry, store as model_store
from jaxnoise.sweep import model as model_lib
from jaxnoise.sweep import store
from tiny_run import TONES, write_tone_dataset

sys.path.insert(0, str(REPO_ROOT))
import launch  # pylint: disable=wrong-import-position
from configs import base  # pylint: disable=wrong-import-position

CLASSES = ",".join(esc50.CLASS_NAMES[target] for target in TONES)
# Hand-set training results: folds 2 and 3 tie for the highest accuracy, so 'best' is fold 2.
FOLD_ACCURACY = {1: 0.5, 2: 0.75, 3: 0.75}


def test_best_fold_is_the_highest_accuracy_and_ties_go_to_the_lower_fold():
  def results(**accuracies):
    return {int(fold[1:]): {"accuracy": value} for fold, value in accuracies.items()}
  assert model_lib.best_fold(results(f1=0.854, f2=0.882, f3=0.868, f4=0.910, f5=0.790)) == 4
  assert model_lib.best_fold(results(f1=0.9474, f2=0.9934, f3=0.9671, f4=0.9605)) == 2
  assert model_lib.best_fold(results(f5=0.8, f3=0.8, f4=0.7)) == 3


@pytest.mark.parametrize("value, expected", [("all", "all"), ("best", "best"), (4, 4), ("4", 4)])
def test_model_fold_values(value, expected):
  assert config_checks.check_model_fold(value) == expected


@pytest.mark.parametrize("value", ["6", 0, "first", True, 2.0])
def test_bad_model_fold_is_named(value):
  with pytest.raises(ConfigError, match=r"config.sweep.model_fold=.*expected 'all'.*'best'.*"
                                        r"fold number of \(1, 2, 3, 4, 5\)"):
    config_checks.check_model_fold(value)


def fold_curve(fold):
  """Rows of a fold's curves.csv: train values every step, test values at steps 2 and 4 only
  (fold 3 was not evaluated at step 2)."""
  rows = []
  for step in (1, 2, 3, 4):
    evaluated = step == 4 or (step == 2 and fold != 3)
    rows.append((step, step / 2, 1e-3, 2.0 / step + fold, 0.1 * step + 0.01 * fold,
                 (1.0 / step + fold) if evaluated else "",
                 (0.2 * step - 0.05 * fold) if evaluated else ""))
  return rows


@pytest.fixture(scope="module")
def trained_workdir(tmp_path_factory):
  """A workdir as three folds of training leave it, and the config that sweeps it."""
  data_root = write_tone_dataset(tmp_path_factory.mktemp("data") / "esc50")
  workdir = tmp_path_factory.mktemp("run")
  labels = [esc50.CLASS_NAMES[target] for target in TONES]
  spec = registry.build_spec("mn", {"width": 0.1, "num_classes": 3, "labels": labels})
  for fold, accuracy in FOLD_ACCURACY.items():
    model_store.save_model(workdir / f"fold{fold}" / "model", spec,
                           mobilenet.random_variables(spec, seed=fold))
    (workdir / f"fold{fold}" / "result.json").write_text(json.dumps(
        {"test_fold": fold, "accuracy": accuracy, "test_clips": 6, "train_clips": 12}))
    (workdir / f"fold{fold}" / "curves.csv").write_text("\n".join(
        ["step,epoch,learning_rate,train_loss,train_accuracy,test_loss,test_accuracy"]
        + [",".join(map(str, row)) for row in fold_curve(fold)]) + "\n")
  config = base.get_config()
  config.modes = ("sweep", "report")
  config.model.name = "tiny"
  config.data.root = str(data_root)
  config.data.cache_dir = str(tmp_path_factory.mktemp("cache"))
  config.data.classes = CLASSES
  config.sweep.noises = ("brown",)
  config.sweep.colored_generator = "study"
  config.sweep.snrs = (0,)
  config.sweep.model_fold = "best"
  config.report.confusion_snrs = ()
  config.report.spectrogram_clip = "21"
  return config, workdir


@pytest.fixture(scope="module")
def best_fold_run(trained_workdir):
  config, workdir = trained_workdir
  launch.run(config, workdir)
  return config, workdir


def test_best_fold_model_alone_is_swept_on_its_test_fold(best_fold_run):
  _, workdir = best_fold_run
  run_info = json.loads((workdir / store.RUN_FILE).read_text())
  assert [model["folds"] for model in run_info["models"]] == [[2]]
  assert run_info["models"][0]["checkpoint"].endswith("fold2/model")
  assert run_info["noises"] == [{"name": "brown", "color": "brown", "generator": "study"}]
  results = store.read_results(workdir)
  assert set(results["fold"].tolist()) == {2} and len(set(results["file"].tolist())) == 6


def test_inference_vs_test_table_values(best_fold_run):
  _, workdir = best_fold_run
  results = store.read_results(workdir)
  clean = results["noise"] == "clean"
  clean_accuracy = np.mean(results["predicted"][clean] == results["target"][clean])
  with open(workdir / "report" / "inference_vs_test.csv", newline="", encoding="utf-8") as stream:
    (row,) = list(csv.DictReader(stream))
  assert (row["model"], row["test_folds"], row["test_clips"], row["swept_clips"]) == (
      "tiny", "2", "6", "6")
  assert row["swept_set"] == "its ESC-50 test fold(s)"
  assert float(row["test_accuracy"]) == 0.75
  assert float(row["clean_accuracy"]) == pytest.approx(clean_accuracy, abs=1e-12)
  assert float(row["accuracy_loss_percent"]) == pytest.approx(
      100 * (0.75 - clean_accuracy) / 0.75, abs=1e-9)
  page = (workdir / "report" / "index.md").read_text()
  assert "the study's Table 4.5" in page and "| tiny | 2 | 6 | 0.750 |" in page


def test_all_folds_pool_their_test_accuracy():
  # model_fold 'all': the fold models share one name and their accuracies pool, clip-weighted.
  from jaxnoise.report import tables  # pylint: disable=import-outside-toplevel
  run_models = [{"name": "tiny", "folds": [fold]} for fold in (1, 2, 3)]
  fold_results = {1: {"accuracy": 0.5, "test_clips": 6}, 2: {"accuracy": 0.75, "test_clips": 6},
                  3: {"accuracy": 1.0, "test_clips": 12}}
  accuracy_rows = [{"model": "tiny", "noise": "clean", "snr_db": "", "accuracy": "0.6", "n": "24"},
                   {"model": "ckpt", "noise": "clean", "snr_db": "", "accuracy": "0.9", "n": "3"}]
  (row,) = tables.inference_vs_test_rows(run_models + [{"name": "ckpt", "folds": None}],
                                         fold_results, accuracy_rows, "/data/inference")
  assert row["test_accuracy"] == pytest.approx((3 + 4.5 + 12) / 24)
  assert row["accuracy_loss_percent"] == pytest.approx(100 * (0.8125 - 0.6) / 0.8125)
  assert (row["test_folds"], row["swept_clips"], row["swept_set"]) == (
      "1 2 3", 24, "inference set /data/inference")


@pytest.mark.parametrize("settings, modes, message", [
    ({"sweep.model_fold": "4"}, ("sweep",), r"model_fold=4: .* holds no finished training of test "
                                            r"fold 4 .*trained folds: \[1, 2, 3\]"),
    ({"sweep.model_fold": "5"}, ("report",), r"model_fold=5: .* holds no finished training"),
    ({"sweep.model_fold": "4", "data.test_folds": (1, 2)}, ("train", "sweep"),
     r"model_fold=4: this run trains test folds \(1, 2\) only"),
    ({"sweep.colored_generator": "matlab"}, ("sweep",),
     "config.sweep.colored_generator='matlab': expected one of psd, study"),
    ({"report.spectrogram_clip": "50"}, ("report",),
     "config.report.spectrogram_clip='50': expected an ESC-50 target 0-49 or the file name"),
])
def test_bad_study_settings_stop_before_any_stage(trained_workdir, settings, modes, message):
  from conftest import override  # pylint: disable=import-outside-toplevel
  config, workdir = trained_workdir
  config = override(config.copy_and_resolve_references(), settings)
  with pytest.raises(ConfigError, match=message):
    preflight.check_config(config, modes, workdir)


def test_best_without_training_results_is_a_clear_error(trained_workdir, tmp_path):
  config, _ = trained_workdir
  with pytest.raises(ConfigError, match=r"model_fold='best' .* holds no training result"):
    preflight.check_config(config, ("sweep",), tmp_path)


def test_study_noise_power_table_is_scipy_at_44_1_khz(best_fold_run):
  # The study's Table 4.7 form: mW in each study model's band, the noise drawn at 44.1 kHz, 5 s.
  from jaxnoise.data import noises  # pylint: disable=import-outside-toplevel
  from test_noise import scipy_band_power  # pylint: disable=import-outside-toplevel
  config, workdir = best_fold_run
  with open(workdir / "report" / "noise_power_study.csv", newline="", encoding="utf-8") as stream:
    (row,) = list(csv.DictReader(stream))
  brown = noises.nominal_noise(noises.NoiseType("brown", color="brown", generator="study"), 0,
                               config.seed, 44100, 220500)
  bands = {"CNN10 50-11025 Hz (mW)": (50, 11025), "TFNet 50-11025 Hz (mW)": (50, 11025),
           "mn40_as 0-15000 Hz (mW)": (0, 15000), "HTS_AT 50-14000 Hz (mW)": (50, 14000)}
  assert row["noise"] == "brown" and row["source"] == "brown (study) seed 0"
  for column, band in bands.items():
    expected = 1e3 * scipy_band_power(brown, 44100, band)
    # float32 band power against scipy's float64: measured up to 9.4e-8 relative (the five colors).
    assert float(row[column]) == pytest.approx(expected, rel=3e-7), column
  page = (workdir / "report" / "index.md").read_text()
  assert "the study's Table 4.7" in page


def test_training_curves_average_the_folds_with_their_spread(best_fold_run):
  _, workdir = best_fold_run
  with open(workdir / "report" / "training_curves.csv", newline="", encoding="utf-8") as stream:
    rows = {int(row["step"]): row for row in csv.DictReader(stream)}
  assert sorted(rows) == [1, 2, 3, 4]
  for step, row in rows.items():
    train_loss = [2.0 / step + fold for fold in FOLD_ACCURACY]
    assert float(row["train_loss_mean"]) == pytest.approx(np.mean(train_loss), abs=1e-12)
    assert (float(row["train_loss_min"]), float(row["train_loss_max"])) == (
        pytest.approx(min(train_loss)), pytest.approx(max(train_loss)))
  # Step 2: folds 1 and 2 were evaluated; step 4: all three; steps 1 and 3: none.
  assert [rows[step]["test_accuracy_folds"] for step in (1, 2, 3, 4)] == ["0", "2", "0", "3"]
  assert float(rows[2]["test_accuracy_mean"]) == pytest.approx(0.4 - 0.05 * 1.5)
  assert float(rows[4]["test_loss_max"]) == pytest.approx(0.25 + 3)
  assert (workdir / "report" / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
  assert "](training_curves.png)" in (workdir / "report" / "index.md").read_text()


def test_spectrogram_clip_is_the_first_swept_clip_of_the_chosen_class(best_fold_run):
  _, workdir = best_fold_run
  page = (workdir / "report" / "index.md").read_text()
  assert "![tiny: 2-21200-A-21.wav](spectrograms_tiny.png)" in page


def test_spectrogram_clip_names_a_swept_file_or_falls_back_for_an_absent_class():
  from jaxnoise.report import page  # pylint: disable=import-outside-toplevel
  tested = [esc50.Record("2-1-A-20.wav", 2, 20, "crying_baby", "1", "A"),
            esc50.Record("2-2-A-21.wav", 2, 21, "sneezing", "2", "A")]
  assert page.spectrogram_record("21", tested) is tested[1]
  assert page.spectrogram_record("31", tested) is tested[0]  # no swept clip of class 31
  assert page.spectrogram_record("2-2-A-21.wav", tested) is tested[1]
  with pytest.raises(ConfigError, match="spectrogram_clip='5-9-A-31.wav' is not a swept clip"):
    page.spectrogram_record("5-9-A-31.wav", tested)
