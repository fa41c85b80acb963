"""The same config and seed give bit-identical results on CPU, and run.json records every seed.

The tiny job of ``tiny_run`` (train a CNN10 from scratch with mixup and masking, then sweep it with
a fresh colored-noise draw per clip and recorded noise, three realisations) runs twice in two
workdirs. Its tables, logits, training curves and trained parameters must agree bit for bit, and
run.json must say where every random draw came from: the seed, the derivation of the noise
realisations, and the trained model's own seed and draws (initial variables, data order,
augmentation and dropout); each noisy row names the draw it got.
"""
import json
import pathlib
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
import soundfile

import tiny_run
from conftest import REPO_ROOT
from jaxnoise.models import store as model_store
from jaxnoise.runtime import files
from jaxnoise.sweep import noises as noise_lib
from jaxnoise.sweep import store
from jaxnoise.train import loop

if str(REPO_ROOT) not in sys.path:
  sys.path.insert(0, str(REPO_ROOT))
import launch  # pylint: disable=wrong-import-position

SEED = 3


def write_recordings(folder: pathlib.Path) -> pathlib.Path:
  """Two 'hum' recordings (different mains frequencies, 22.05 kHz stereo): one recorded noise."""
  folder.mkdir(parents=True)
  t = np.arange(3 * 22050) / 22050
  for index, frequency in enumerate((50.0, 60.0)):
    hum = np.sin(2 * np.pi * frequency * t) + 0.3 * np.sin(2 * np.pi * 7 * frequency * t)
    soundfile.write(folder / f"hum{index}.wav", np.stack([hum, 0.5 * hum], axis=1), 22050)
  return folder


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
  folder = tmp_path_factory.mktemp("determinism")
  data_root = tiny_run.write_tone_dataset(folder / "esc50")
  config_file = tiny_run.write_config(folder / "tiny.py", data_root, folder / "cache", steps=4,
                                      seed=SEED)
  recordings = write_recordings(folder / "noise")
  workdirs = []
  for name in ("first", "second"):
    config = tiny_run.load_config(config_file)
    config.sweep.noises = ("white",)
    config.sweep.noise_paths = (f"hum={recordings}",)
    launch.run(config, folder / name)
    workdirs.append(folder / name)
  return workdirs


def variables_of(workdir):
  return ocp.StandardCheckpointer().restore(
      (pathlib.Path(workdir) / "fold1" / "model" / model_store.VARIABLES_DIR).absolute())


@pytest.mark.slow
def test_same_config_and_seed_give_bit_identical_results(two_runs):
  first, second = two_runs
  for name in (store.RESULTS_FILE, store.ACCURACY_FILE, "fold1/curves.csv",
               "fold1/predictions.csv"):
    assert (first / name).read_bytes() == (second / name).read_bytes(), name
  logits = sorted((first / "sweep" / "units").glob("*.npz"))
  assert len(logits) == 1 + 3 + 2  # clean, white x 3, hum x 2 (two recordings)
  for path in logits:
    np.testing.assert_array_equal(np.load(path)["logits"],
                                  np.load(second / "sweep" / "units" / path.name)["logits"])
  left, right = variables_of(first), variables_of(second)
  assert jax.tree.structure(left) == jax.tree.structure(right)
  for a, b in zip(jax.tree.leaves(left), jax.tree.leaves(right)):
    np.testing.assert_array_equal(a, b)
  # The realisations are different draws: identical runs are not identical by being constant.
  white = [np.load(path)["logits"] for path in logits if "-white-" in path.name]
  assert len(white) == 3 and not np.array_equal(white[0], white[1])


@pytest.mark.slow
def test_run_json_records_every_seed(two_runs):
  first, _ = two_runs
  metadata = json.loads((first / store.RUN_FILE).read_text())
  assert metadata["config"]["seed"] == SEED
  seeds = metadata["seeds"]
  assert seeds["seed"] == SEED
  assert "fold_in(key(seed), r)" in seeds["colored_noise"] and "crc32" in seeds["colored_noise"]
  assert "(i + r) mod n" in seeds["recorded_noise"]
  assert "models[i].source.seed" in seeds["trained_models"]
  (model,) = metadata["models"]
  assert model["source"]["seed"] == SEED
  assert model["source"]["random_draws"] == loop.RANDOM_DRAWS
  assert set(loop.RANDOM_DRAWS) == {"initial_variables", "data_order", "augmentation_and_dropout"}
  run_settings = json.loads((first / "fold1" / "run_settings.json").read_text())
  assert run_settings["seed"] == SEED and run_settings["train"]["mixup_alpha"] == 0.2

  # Each noisy row names its draw, as the recorded derivation says.
  rows = [row for row in files.read_csv(first / store.RESULTS_FILE) if row["noise"] != "clean"]
  clip_files = sorted({row["file"] for row in rows})
  recordings = sorted(name for name in {row["noise_source"] for row in rows
                                        if row["noise"] == "hum"})
  assert recordings == ["hum0.wav", "hum1.wav"]
  for row in rows:
    realisation = int(row["realisation"])
    if row["noise"] == "white":
      assert row["noise_source"] == (f"seed {SEED} realisation {realisation} clip "
                                     f"{noise_lib.clip_number(row['file'])}")
    else:
      position = clip_files.index(row["file"])
      assert row["noise_source"] == recordings[(position + realisation) % 2]
