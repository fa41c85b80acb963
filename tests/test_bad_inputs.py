"""Bad inputs at every entry point: one clear error line, or a documented conversion.

For launch.py, ``python -m jaxnoise.convert``, ``python -m jaxnoise.predict``, the ESC-50 data
loading and ``python -m jaxnoise.noise mix|report``: missing, corrupt, empty and non-audio files, stereo,
8-bit and 24-bit WAV, other sample rates, 0.1-s and 60-s clips, NaN/Inf samples, a silent clip,
checkpoints of the wrong architecture or truncated, and configs with unknown keys or impossible
values. A user mistake must end in ``error: <message naming the file/key/value and what was
expected>`` with exit status 2, never a traceback, a NaN in a result table or a partial result
file; files that can be converted (stereo, other rates and lengths, 8/24-bit) are converted as
documented (mean over channels, soxr resampling, zero-padding or cutting).

Most cases run in-process through ``cli.run_main`` (fast); a few run the real command lines.
The model is a randomly initialised CNN10 (its compiled forward is the cheapest of the families).
"""
import hashlib
import json
import math
import pathlib
import shutil
import subprocess
import sys
import urllib.error

import flax.linen as nn
import jax
import librosa
import numpy as np
import pytest
import soundfile

from conftest import REPO_ROOT, override, write_esc50
from jaxnoise import cli
from jaxnoise.convert import __main__ as convert_main
from jaxnoise.data import clips as clip_loading
from jaxnoise.data import esc50
from jaxnoise.errors import JaxnoiseError
from jaxnoise.models import registry, store as model_store
from jaxnoise.models.spec import ModelSpec
from jaxnoise.noise import __main__ as noise_main
from jaxnoise.predict import main as predict_main
from jaxnoise.runtime import checkpoints, files
from jaxnoise.sweep import run as sweep_run
from jaxnoise.sweep import store
from jaxnoise.train import loop

if str(REPO_ROOT) not in sys.path:
  sys.path.insert(0, str(REPO_ROOT))
import launch  # pylint: disable=wrong-import-position
from configs import base  # pylint: disable=wrong-import-position

RATE = esc50.SAMPLE_RATE
CLASSES = {"crying_baby": 300.0, "sneezing": 1200.0, "clapping": 3000.0}  # class -> tone (Hz)
SUBPROCESS_TIMEOUT = 300


# --- Inputs -------------------------------------------------------------------------------------


def tone(seconds=5.0, frequency=440.0, rate=RATE):
  t = np.arange(int(round(seconds * rate))) / rate
  return 0.3 * np.sin(2 * np.pi * frequency * t)


def write_odd_files(folder: pathlib.Path) -> dict:
  """Readable audio that is not ESC-50's 5-s 44.1 kHz mono 16-bit: each has a documented
  conversion."""
  folder.mkdir(parents=True, exist_ok=True)
  files = {}

  def write(name, data, rate=RATE, subtype="PCM_16"):
    files[name] = folder / f"{name}.wav"
    soundfile.write(files[name], data, rate, subtype=subtype)

  write("stereo", np.stack([tone(), 0.5 * tone(frequency=880.0)], axis=1))
  write("pcm_u8", tone(), subtype="PCM_U8")
  write("pcm_24", tone(), subtype="PCM_24")
  write("rate_16k", tone(rate=16000), rate=16000)
  write("short_0.1s", tone(0.1))
  write("long_60s", tone(60.0))
  write("silent", np.zeros(int(5 * RATE)))
  return files


def write_bad_files(folder: pathlib.Path) -> dict:
  """Files that are not usable audio: each must be refused naming the file."""
  folder.mkdir(parents=True, exist_ok=True)
  files = {name: folder / f"{name}.wav" for name in ("nan", "inf", "huge", "empty", "text",
                                                     "truncated", "no_samples")}
  for name, value in (("nan", np.nan), ("inf", np.inf), ("huge", 1e20)):
    data = tone().astype(np.float32)
    data[1000] = value  # 'huge': a float file whose spectra would overflow to NaN scores
    soundfile.write(files[name], data, RATE, subtype="FLOAT")
  files["empty"].write_bytes(b"")
  files["text"].write_text("these are notes, not audio\n")
  soundfile.write(files["truncated"], tone(), RATE, subtype="PCM_16")
  files["truncated"].write_bytes(files["truncated"].read_bytes()[:30])  # inside the header
  soundfile.write(files["no_samples"], np.zeros(0), RATE, subtype="PCM_16")
  return files


BAD_FILE_MESSAGES = {"nan": "holds NaN or Inf samples", "inf": "holds NaN or Inf samples",
                     "huge": "has samples up to 1e+20; expected audio within +-1",
                     "empty": "cannot read", "text": "cannot read", "truncated": "cannot read",
                     "no_samples": "holds no samples"}


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory):
  return write_odd_files(tmp_path_factory.mktemp("odd"))


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
  return write_bad_files(tmp_path_factory.mktemp("bad"))


def write_dataset(root: pathlib.Path, extra=()) -> pathlib.Path:
  """Tones of the three classes in ESC-50's layout (one clip per class in folds 1 and 2), plus
  ``extra`` ``(source file, target)`` clips copied in as fold-1 clips."""
  clips = []
  for category, frequency in CLASSES.items():
    target = esc50.CLASS_NAMES.index(category)
    for fold in (1, 2):
      clips.append((fold, target, f"{target}0{fold}", tone(frequency=frequency)))
  for number, (source, target) in enumerate(extra):
    clips.append((1, target, str(90000 + number), source))
  return write_esc50(root, clips)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
  return write_dataset(tmp_path_factory.mktemp("data") / "esc50")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  """A random CNN10 whose three outputs are named after the tested classes."""
  spec = registry.build_spec("cnn10", {"num_classes": 3, "labels": list(CLASSES)})
  variables = jax.jit(spec.init)(jax.random.key(0))
  return model_store.save_model(tmp_path_factory.mktemp("model") / "cnn10", spec, variables)


def make_config(data_root, model_dir, tmp_path, **changes):
  """A sweep of ``model_dir`` over ``data_root``: white noise at two SNRs; ``changes`` are
  ``{'section.key': value}``."""
  config = base.get_config()
  settings = {"modes": ("sweep",), "model.checkpoint": str(model_dir),
              "data.root": str(data_root), "data.cache_dir": str(tmp_path / "cache"),
              "cache_dir": str(tmp_path / "cache" / "xla"),
              "data.classes": ",".join(CLASSES), "data.test_folds": (1,),
              "sweep.noises": ("white",), "sweep.snrs": (-5, 5), "train.steps": 2,
              "train.batch_size": 4}
  return override(config, {**settings, **changes})


def run_cli(main, argv, capsys):
  code = cli.run_main(main, argv)
  out, err = capsys.readouterr()
  return code, out, err


def assert_user_error(code, err, *fragments):
  """Exit status 2 and a last stderr line ``error: ...`` holding every fragment."""
  assert code == 2, err[-2000:]
  assert "Traceback" not in err, err[-2000:]
  last = err.strip().splitlines()[-1]
  assert last.startswith("error: "), err[-2000:]
  for fragment in fragments:
    assert fragment in last, (fragment, last)


def launch_in_process(config, workdir, capsys):
  return run_cli(lambda _: launch.run(config, workdir), None, capsys)


def result_cells(workdir: pathlib.Path):
  """Every cell of every CSV table under ``workdir``."""
  for path in sorted(pathlib.Path(workdir).rglob("*.csv")):
    for row in files.read_csv(path):
      yield from row.values()


# --- launch.py: configs ---------------------------------------------------------------------


@pytest.mark.parametrize("changes, fragments", [
    ({"sweep.snrs": ()}, ["config.sweep.snrs is empty"]),
    ({"sweep.snrs": (0, math.nan)}, ["config.sweep.snrs must be finite", "nan"]),
    ({"sweep.snrs": (0, 0)}, ["lists an SNR twice"]),
    ({"sweep.noises": ("purple",)}, ["noise 'purple'", "white, pink, brown, blue, violet"]),
    ({"sweep.noises": ("esc50:sneezing",)}, ["esc50:sneezing", "under test"]),
    ({"sweep.noises": ("esc50:dog",)}, ["no ESC-50 clip of class dog"]),
    ({"sweep.realisations": 0}, ["config.sweep.realisations", ">= 1", "got 0"]),
    ({"sweep.chunk_clips": -3}, ["config.sweep.chunk_clips", "got -3"]),
    ({"sweep.folds": (9,)}, ["config.sweep.folds", "[9]"]),
    ({"data.classes": "crying_baby,dog"},
     ["dog (0)", "no clip in", "holds targets [20, 21, 22]"]),
    ({"data.classes": "crying_baby,99"}, ["target 99 is outside 0..49"]),
    ({"data.classes": "cryingbaby"}, ["'cryingbaby' is neither an ESC-50 target"]),
    ({"data.classes": "esc19", "data.dropped_class": "dog"}, ["dropped_class='dog'"]),
    ({"data.root": "/nonexistent/esc50"}, ["config.data.root='/nonexistent/esc50'",
                                           "meta/esc50.csv"]),
    ({"data.source": "imagenet"}, ["config.data.source='imagenet' is not a data source"]),
    ({"data.source": "folder", "data.root": ""}, ["config.data.source='folder' reads "
                                                  "config.data.root, which is empty"]),
    ({"data.split_folds": 1}, ["config.data.split_folds must be 0", "got 1"]),
    ({"data.clip_policy": "middle"}, ["config.data.clip_policy='middle'", "'windows'"]),
    ({"sweep.inference_root": "/nonexistent/set"}, ["config.sweep.inference_root="
                                                    "'/nonexistent/set' does not exist"]),
    ({"model.label_map": "/nonexistent/map.json"}, ["config.model.label_map="
                                                    "'/nonexistent/map.json' cannot be read"]),
    ({"seed": -1}, ["config.seed", "got -1"]),
    ({"modes": ("sweep", "fly")}, ["config.modes"]),
    ({"model.checkpoint": "/nonexistent/model"}, ["config.model.checkpoint='/nonexistent/model'",
                                                  "does not exist"]),
    ({"modes": ("train",), "train.batch_size": 0}, ["config.train.batch_size", "got 0"]),
    ({"modes": ("train",), "train.steps": -5}, ["config.train.steps", "got -5"]),
    ({"modes": ("train",), "train.learning_rate": math.nan}, ["config.train.learning_rate",
                                                              "nan"]),
    ({"modes": ("train",), "train.learning_rate": -0.1}, ["config.train.learning_rate", "> 0"]),
    ({"modes": ("train",), "train.mixup_alpha": -1.0}, ["config.train.mixup_alpha"]),
    ({"modes": ("train",), "train.optimizer": "adamm"}, ["config.train.optimizer='adamm'"]),
    ({"modes": ("train",), "train.schedule": "cosine"}, ["config.train.schedule='cosine'"]),
    ({"modes": ("train",), "train.augment_cycle": ("flip",)}, ["augment_cycle has 'flip'"]),
    ({"modes": ("train",), "train.keep_checkpoints": 0}, ["config.train.keep_checkpoints"]),
    ({"modes": ("train",), "data.test_folds": ()}, ["config.data.test_folds is empty"]),
    ({"modes": ("train",), "train.noise_augment.enabled": True,
      "train.noise_augment.probability": 1.5},
     ["config.train.noise_augment.probability", "[0, 1]", "1.5"]),
    ({"modes": ("train",), "train.noise_augment.enabled": True, "train.noise_augment.snr_low": 30.0},
     ["config.train.noise_augment.snr_low=30.0 dB is above", "snr_high=20.0"]),
    ({"modes": ("train",), "train.noise_augment.enabled": True,
      "train.noise_augment.noises": ("pink", "fizz")},
     ["config.train.noise_augment.noises", "'fizz'", "does not exist"]),
    ({"modes": ("train",), "data.split_folds": 7},
     ["config.data.split_folds=7", "cannot split 6 source recording(s) into 7"]),
    ({"modes": ("train",), "data.test_folds": (6,)}, ["config.data.test_folds", "[6]"]),
    ({"modes": ("train",), "model.arch": "resnet"}, ["unknown model architecture 'resnet'"]),
    ({"modes": ("train",), "model.checkpoint": "", "model.overrides": {"widht": 2}},
     ["config.model.overrides", "'widht'"]),
    ({"modes": ("report",), "report.confusion_snrs": ("low",)}, ["config.report.confusion_snrs"]),
    ({"modes": ("report",), "report.compare_workdirs": ("/nonexistent/run",)},
     ["config.report.compare_workdirs", "/nonexistent/run/accuracy.csv"]),
    ({"sweep.precision": "fp16"}, ["config.sweep.precision", "'fp16'", "bfloat16"]),
    ({"modes": ("train",), "train.precision": "half"}, ["config.train.precision", "'half'"]),
    ({"cache_dir": "/dev/null/xla"}, ["config.cache_dir='/dev/null/xla'", "cannot be written",
                                      "--config.compile_cache=False"]),
    ({"modes": ("train",), "train.cpu_devices": -2},
     ["config.train.cpu_devices", "whole number >= 0", "-2"]),
    ({"modes": ("train",), "train.cpu_devices": 3, "train.batch_size": 4},
     ["config.train.cpu_devices=3 does not divide config.train.batch_size=4"]),
])
def test_launch_refuses_bad_configs_before_any_work(changes, fragments, data_root, model_dir,
                                                    tmp_path, capsys):
  workdir = tmp_path / "run"
  code, _, err = launch_in_process(make_config(data_root, model_dir, tmp_path, **changes),
                                   workdir, capsys)
  assert_user_error(code, err, *fragments)
  assert not workdir.exists()  # refused before the workdir was even created


def test_launch_report_without_a_sweep_says_what_to_run(data_root, model_dir, tmp_path, capsys):
  code, _, err = launch_in_process(make_config(data_root, model_dir, tmp_path,
                                               modes=("report",)), tmp_path / "run", capsys)
  assert_user_error(code, err, "accuracy.csv does not exist", "run the 'sweep' mode first")


def test_launch_offline_without_the_checkpoint_says_what_to_pass(data_root, tmp_path, capsys,
                                                                 monkeypatch):
  def offline(*_, **__):
    raise urllib.error.URLError("no network")

  monkeypatch.setattr(checkpoints.urllib.request, "urlopen", offline)
  missing = tmp_path / "checkpoints" / "mn04_as_mAP_432.pt"
  config = make_config(data_root, missing, tmp_path, **{"model.arch": "mn"})
  code, _, err = launch_in_process(config, tmp_path / "run", capsys)
  assert_user_error(code, err, "Offline?", checkpoints.RELEASES[missing.name][0],
                    "--config.model.checkpoint=")
  assert not missing.exists()


@pytest.mark.parametrize("arguments, fragments", [
    (["--config.train.no_such_key=1"], ["no_such_key"]),
    (["--config.train.batch_size=many"], ["batch_size"]),
    (["--config.sweep.snrs=()"], ["config.sweep.snrs is empty"]),
    (["--config.data.root=/nonexistent/shared/data/esc50"], ["/nonexistent/shared/data/esc50",
                                                             "does not hold ESC-50"]),
])
def test_launch_command_line_errors_exit_2_with_one_line(arguments, fragments, tmp_path):
  """The real entry point: absl flag parsing, config overrides and the checks, in a process."""
  process = subprocess.run(
      [sys.executable, str(REPO_ROOT / "launch.py"), f"--config={REPO_ROOT / 'configs/base.py'}",
       f"--workdir={tmp_path / 'run'}", "--config.modes=('sweep',)",
       f"--config.data.cache_dir={tmp_path / 'cache'}", *arguments],
      capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT, cwd=REPO_ROOT)
  assert_user_error(process.returncode, process.stderr, *fragments)
  assert not (tmp_path / "run").exists()


def test_launch_with_a_misspelt_config_file(tmp_path):
  process = subprocess.run(
      [sys.executable, str(REPO_ROOT / "launch.py"), "--config=configs/quikstart.py",
       f"--workdir={tmp_path / 'run'}"],
      capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT, cwd=REPO_ROOT)
  assert_user_error(process.returncode, process.stderr,
                    "--config=configs/quikstart.py cannot be loaded (no such file)")
  assert not (tmp_path / "run").exists()


# --- launch.py: checkpoints -----------------------------------------------------------------


def damaged_copy(model_dir, destination, damage) -> pathlib.Path:
  copy = pathlib.Path(shutil.copytree(model_dir, destination))
  damage(copy)
  return copy


def largest_variables_file(directory) -> pathlib.Path:
  return max((p for p in (directory / model_store.VARIABLES_DIR).rglob("*") if p.is_file()),
             key=lambda p: p.stat().st_size)


def truncate(directory):
  path = largest_variables_file(directory)
  path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def flip_a_byte(directory):
  path = largest_variables_file(directory)
  data = bytearray(path.read_bytes())
  data[len(data) // 2] ^= 0x01
  path.write_bytes(bytes(data))


def other_architecture(directory):
  """config.json claims a tfnet; the variables are a CNN10's."""
  config_path = directory / model_store.CONFIG_FILE
  metadata = json.loads(config_path.read_text())
  metadata["arch"] = "tfnet"
  config_path.write_text(json.dumps(metadata))


def no_variables(directory):
  shutil.rmtree(directory / model_store.VARIABLES_DIR)


DAMAGES = {
    "truncated": (truncate, ["bytes", "were saved (a truncated copy?)"]),
    "altered": (flip_a_byte, ["does not hold the bytes that were saved"]),
    "wrong_architecture": (other_architecture, ["do not fit the 'tfnet' architecture",
                                                "missing", "unexpected"]),
    "no_variables": (no_variables, ["is incomplete", "is missing"]),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_checkpoints_are_named_by_launch_and_predict(damage, model_dir, data_root,
                                                             odd_files, tmp_path, capsys):
  function, fragments = DAMAGES[damage]
  broken = damaged_copy(model_dir, tmp_path / "broken", function)
  code, out, err = run_cli(predict_main, ["--checkpoint", str(broken),
                                          str(odd_files["stereo"])], capsys)
  assert_user_error(code, err, str(broken), *fragments)
  assert out == ""
  workdir = tmp_path / "run"
  code, _, err = launch_in_process(make_config(data_root, broken, tmp_path), workdir, capsys)
  assert_user_error(code, err, str(broken), *fragments)
  assert not (workdir / store.RESULTS_FILE).exists()


def test_checkpoint_with_nan_weights_is_refused(model_dir, odd_files, tmp_path, capsys):
  spec, variables = model_store.load_model(model_dir)
  poisoned = jax.tree.map(np.asarray, variables)
  poisoned["params"]["fc"]["bias"] = np.full_like(poisoned["params"]["fc"]["bias"], np.nan)
  broken = model_store.save_model(tmp_path / "nan_model", spec, poisoned)
  code, out, err = run_cli(predict_main, ["--checkpoint", str(broken),
                                          str(odd_files["stereo"])], capsys)
  assert_user_error(code, err, "hold NaN or Inf values", "['params']['fc']['bias']")
  assert out == ""


def test_training_from_a_checkpoint_of_another_architecture(model_dir, data_root, tmp_path,
                                                            capsys):
  config = make_config(data_root, model_dir, tmp_path, modes=("train",),
                       **{"model.arch": "mn"})
  code, _, err = launch_in_process(config, tmp_path / "run", capsys)
  assert_user_error(code, err, f"config.model.checkpoint='{model_dir}'", "holds a 'cnn10' model",
                    "config.model.arch is 'mn'")


@pytest.mark.parametrize("name, fragments", [
    ("foreign", ["not an EfficientAT mn state dict", "encoder.layer0.weight"]),
    ("truncated", ["cannot read", "truncated or not a torch.save file?"]),
])
def test_launch_names_a_bad_upstream_checkpoint(name, fragments, torch_files, data_root, tmp_path,
                                                capsys):
  config = make_config(data_root, torch_files[name], tmp_path, **{"model.arch": "mn"})
  code, _, err = launch_in_process(config, tmp_path / "run", capsys)
  assert_user_error(code, err, str(torch_files[name]), *fragments)
  assert not (tmp_path / "run" / store.RESULTS_FILE).exists()
  assert not list((tmp_path / "cache").glob("models/*"))  # no half-converted model is cached


# --- python -m jaxnoise.predict -------------------------------------------------------------


def test_predict_converts_odd_files_as_documented(model_dir, odd_files, tmp_path, capsys):
  """Stereo is the mean of its channels, other rates are resampled, short files padded, long
  files read whole; every score is finite and the softmax rows sum to 1."""
  mono_mean = tmp_path / "stereo_mean.wav"
  stereo, rate = soundfile.read(odd_files["stereo"])
  soundfile.write(mono_mean, stereo.mean(axis=1), rate, subtype="DOUBLE")
  names = sorted(odd_files)
  code, out, err = run_cli(predict_main, ["--checkpoint", str(model_dir), "--json",
                                          *[str(odd_files[n]) for n in names],
                                          str(mono_mean)], capsys)
  assert code == 0, err
  results = {pathlib.Path(line["file"]).stem: line
             for line in map(json.loads, out.strip().splitlines())}
  assert sorted(results) == sorted(names + ["stereo_mean"])
  for name, result in results.items():
    scores = np.asarray(result["scores"])
    assert scores.shape == (3,) and np.all(np.isfinite(scores)), name
    np.testing.assert_allclose(scores.sum(), 1.0, rtol=1e-5)
  np.testing.assert_allclose(results["stereo"]["scores"], results["stereo_mean"]["scores"],
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", sorted(BAD_FILE_MESSAGES))
def test_predict_refuses_bad_audio_and_prints_nothing(kind, model_dir, odd_files, bad_files,
                                                      capsys):
  """A bad file after a good one: the error names it, and no score of the good one is printed."""
  code, out, err = run_cli(predict_main, ["--checkpoint", str(model_dir),
                                          str(odd_files["stereo"]), str(bad_files[kind])], capsys)
  assert_user_error(code, err, str(bad_files[kind]), BAD_FILE_MESSAGES[kind])
  assert out == ""


@pytest.mark.parametrize("target, fragments", [
    ("missing", ["model directory", "does not exist"]),
    ("not_a_model", ["is not a jaxnoise model directory", "python -m jaxnoise.convert"]),
    ("bad_json", ["config.json is not valid JSON"]),
    ("list_json", ["config.json holds a JSON list, expected an object"]),
    ("label_count", ["config.json lists 2 labels for a head of 3 classes"]),
])
def test_predict_refuses_bad_model_directories(target, fragments, model_dir, odd_files, tmp_path,
                                               capsys):
  directory = tmp_path / target
  if target == "not_a_model":
    directory.mkdir()
  elif target != "missing":
    shutil.copytree(model_dir, directory)
    config_path = directory / model_store.CONFIG_FILE
    if target == "bad_json":
      config_path.write_text('{"arch": "cnn10",')
    elif target == "list_json":
      config_path.write_text("[1, 2]")
    else:
      metadata = json.loads(config_path.read_text())
      metadata["labels"] = metadata["labels"][:2]
      config_path.write_text(json.dumps(metadata))
  code, out, err = run_cli(predict_main, ["--checkpoint", str(directory),
                                          str(odd_files["stereo"])], capsys)
  assert_user_error(code, err, str(directory), *fragments)
  assert out == ""


def test_predict_module_reports_a_truncated_model_without_traceback(model_dir, odd_files,
                                                                    tmp_path):
  broken = damaged_copy(model_dir, tmp_path / "broken", truncate)
  process = subprocess.run([sys.executable, "-m", "jaxnoise.predict", "--checkpoint", str(broken),
                            str(odd_files["short_0.1s"])], capture_output=True, text=True,
                           timeout=SUBPROCESS_TIMEOUT, cwd=REPO_ROOT)
  assert_user_error(process.returncode, process.stderr, "a truncated copy?")
  assert process.stdout == ""


# --- python -m jaxnoise.convert -------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_files(tmp_path_factory):
  """Small torch.save files: a foreign state dict, its truncated copy, a list, a non-tensor."""
  torch = pytest.importorskip("torch", reason="reading PyTorch checkpoints needs torch")
  folder = tmp_path_factory.mktemp("torch")
  files = {name: folder / f"{name}.pt" for name in ("foreign", "truncated", "a_list",
                                                     "not_tensors", "empty", "text")}
  torch.save({"encoder.layer0.weight": torch.zeros(4, 4)}, files["foreign"])
  files["truncated"].write_bytes(files["foreign"].read_bytes()[:200])
  torch.save([1, 2, 3], files["a_list"])
  torch.save({"fc.weight": 3}, files["not_tensors"])
  files["empty"].write_bytes(b"")
  files["text"].write_text("not a checkpoint\n")
  return files


@pytest.mark.parametrize("arch, name, fragments", [
    ("mn", "missing", ["does not exist"]),
    ("mn", "empty", ["is empty (0 bytes)"]),
    ("mn", "text", ["cannot read", "as a PyTorch checkpoint"]),
    ("mn", "truncated", ["cannot read", "truncated or not a torch.save file?"]),
    ("mn", "a_list", ["expected a dict, found list"]),
    ("cnn10", "not_tensors", ["entry 'fc.weight' is a int, not a tensor"]),
    ("mn", "foreign", ["not an EfficientAT mn state dict", "encoder.layer0.weight"]),
    ("htsat", "foreign", ["not an HTS-AT state dict?"]),
    ("cnn10", "foreign", ["not a cnn10 state dict?"]),
])
def test_convert_names_the_bad_checkpoint(arch, name, fragments, torch_files, tmp_path, capsys):
  source = torch_files.get(name, tmp_path / "missing.pt")
  out_dir = tmp_path / "converted"
  code, _, err = run_cli(convert_main.main, ["--arch", arch, "--src", str(source),
                                             "--out", str(out_dir)], capsys)
  assert_user_error(code, err, str(source), *fragments)
  assert not out_dir.exists()


def test_convert_wrong_architecture_of_a_real_checkpoint(golden_dir, tmp_path, capsys):
  pytest.importorskip("torch", reason="reading PyTorch checkpoints needs torch")
  source = golden_dir / "cnn10" / "cnn10_random_19cls.pth"
  code, _, err = run_cli(convert_main.main, ["--arch", "tfnet", "--src", str(source),
                                             "--out", str(tmp_path / "out")], capsys)
  assert code == 2 and "Traceback" not in err
  assert err.startswith(f"error: cannot convert {source}") and "missing upstream keys" in err
  assert "'tfblock1.alpha'" in err  # the keys a TFNet needs and a CNN10 file lacks
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("options, fragments", [
    (["--config", "[1]"], ["--config must be a JSON object", "'[1]'"]),
    (["--config", "{"], ["--config is not a JSON object"]),
    (["--config", '{"bogus": 1}'], ["unknown config key(s) ['bogus'] for model 'mn'"]),
    (["--num-classes", "-1"], ["num_classes must be a positive integer, got -1"]),
    (["--width", "-1"], ["'width' must be a positive number", "-1.0"]),
    (["--width", "1.0"], ["do not fit width 1.0", "it fits width 0.4"]),
])
def test_convert_refuses_impossible_options(options, fragments, golden_dir, tmp_path, capsys):
  pytest.importorskip("torch", reason="reading PyTorch checkpoints needs torch")
  source = golden_dir / "mn" / "mn04_random_19cls.pt"
  code, _, err = run_cli(convert_main.main, ["--arch", "mn", "--src", str(source),
                                             "--out", str(tmp_path / "out"), *options], capsys)
  assert_user_error(code, err, *fragments)
  assert not (tmp_path / "out").exists()


def test_convert_output_under_a_file_is_a_clear_error(tmp_path, capsys, golden_dir):
  pytest.importorskip("torch", reason="reading PyTorch checkpoints needs torch")
  blocker = tmp_path / "a_file"
  blocker.write_text("x")
  code, _, err = run_cli(convert_main.main, [
      "--arch", "mn", "--src", str(golden_dir / "mn" / "mn04_random_19cls.pt"),
      "--out", str(blocker / "model")], capsys)
  assert_user_error(code, err, "cannot create the model directory", str(blocker / "model"))


# --- Data loading (ESC-50 root, metadata, audio) --------------------------------------------


def edit_metadata(root, edit):
  path = root / "meta" / "esc50.csv"
  lines = path.read_text().splitlines()
  path.write_text("\n".join(edit(lines)) + "\n")


@pytest.mark.parametrize("edit, fragments", [
    (lambda lines: [lines[0].replace("fold,", "folds,")] + lines[1:], ["lacks the column",
                                                                      "'fold'"]),
    (lambda lines: lines[:1] + [lines[1].replace(",1,20,", ",7,20,")] + lines[2:],
     ["esc50.csv:2", "fold 7 is not one of"]),
    (lambda lines: lines[:1] + [lines[1].replace("crying_baby", "sneezing")] + lines[2:],
     ["esc50.csv:2", "category 'sneezing' does not match target 20"]),
    (lambda lines: lines + [lines[1]], ["more than once"]),
    (lambda lines: lines + ["1-777-A-20.wav,1,20,crying_baby,False,777,A"],
     ["missing from", "1-777-A-20.wav"]),
    (lambda lines: lines[:1], ["lists no clips"]),
])
def test_broken_metadata_names_file_and_line(edit, fragments, data_root, model_dir, tmp_path,
                                             capsys):
  root = pathlib.Path(shutil.copytree(data_root, tmp_path / "esc50"))
  edit_metadata(root, edit)
  code, _, err = launch_in_process(make_config(root, model_dir, tmp_path), tmp_path / "run",
                                   capsys)
  assert_user_error(code, err, *fragments)


@pytest.mark.parametrize("kind", sorted(BAD_FILE_MESSAGES))
def test_bad_clip_in_the_data_stops_the_sweep_before_any_result(kind, bad_files, model_dir,
                                                               tmp_path, capsys):
  root = write_dataset(tmp_path / "esc50", extra=[(bad_files[kind], 20)])
  workdir = tmp_path / "run"
  code, _, err = launch_in_process(make_config(root, model_dir, tmp_path), workdir, capsys)
  assert_user_error(code, err, "1-90000-A-20.wav", BAD_FILE_MESSAGES[kind])
  assert not (workdir / store.RESULTS_FILE).exists()
  assert not list(workdir.rglob("*.csv"))


def test_odd_clips_are_refused_without_convert_audio(odd_files, model_dir, tmp_path, capsys):
  root = write_dataset(tmp_path / "esc50", extra=[(odd_files["stereo"], 20)])
  config = make_config(root, model_dir, tmp_path, **{"data.convert_audio": False})
  code, _, err = launch_in_process(config, tmp_path / "run", capsys)
  assert_user_error(code, err, "1-90000-A-20.wav", "has 2 channels, expected mono",
                    "config.data.convert_audio=True")


@pytest.mark.slow
def test_odd_and_silent_clips_are_converted_and_marked(odd_files, model_dir, tmp_path, capsys):
  """Stereo, 8/24-bit, 16 kHz, 0.1-s, 60-s and silent clips in the data: converted as documented
  (checked against the loader), swept without NaN, and the silent clip marked in the tables."""
  names = sorted(odd_files)
  root = write_dataset(tmp_path / "esc50", extra=[(odd_files[n], 20) for n in names])
  clip_of = {f"1-{90000 + i}-A-20.wav": name for i, name in enumerate(names)}
  workdir = tmp_path / "run"
  code, _, err = launch_in_process(make_config(root, model_dir, tmp_path), workdir, capsys)
  assert code == 0, err
  rows = files.read_csv(workdir / store.RESULTS_FILE)
  assert {row["file"] for row in rows} >= set(clip_of)
  assert not any(cell.lower() in ("nan", "inf", "-inf") for cell in result_cells(workdir))
  silent_file = next(f for f, name in clip_of.items() if name == "silent")
  silent_rows = [row for row in rows if row["file"] == silent_file and row["noise"] == "white"]
  assert len(silent_rows) == 2
  assert all(row["noise_source"] == sweep_run.SILENT_CLIP_SOURCE for row in silent_rows)
  # No noise was added to it: its noisy decisions are its clean one.
  clean = next(row for row in rows if row["file"] == silent_file and row["noise"] == "clean")
  assert all(row["predicted"] == clean["predicted"] for row in silent_rows)
  metadata = json.loads((workdir / store.RUN_FILE).read_text())
  assert metadata["silent_clips"] == {"cnn10": [silent_file]}
  # The documented conversion, as the sweep decoded and cached it: librosa.load's mono mean and
  # soxr resampling of the whole file (clip_policy 'first' then cuts or pads to the model's 5 s).
  for file_name, name in clip_of.items():
    digest = hashlib.sha256((root / "audio" / file_name).read_bytes()).hexdigest()
    cached = tmp_path / "cache" / clip_loading.CACHE_SUBDIR / (
        f"{digest}-{RATE}hz-whole-v{clip_loading.CACHE_FORMAT}.npz")
    expected = librosa.load(odd_files[name], sr=RATE, mono=True)[0]
    np.testing.assert_allclose(np.load(cached)["waveform"], expected, atol=2e-6, err_msg=name)


def test_silent_noise_recording_is_refused_before_any_unit(odd_files, data_root, model_dir,
                                                           tmp_path, capsys):
  config = make_config(data_root, model_dir, tmp_path,
                       **{"sweep.noise_paths": (str(odd_files["silent"]),)})
  workdir = tmp_path / "run"
  code, _, err = launch_in_process(config, workdir, capsys)
  assert_user_error(code, err, str(odd_files["silent"]), "has no power in the band")
  assert not list((workdir / "sweep").rglob("*.csv"))
  # Fixing the config resumes in the same workdir: nothing of the refused sweep was kept.
  config.sweep.noise_paths = ()
  code, _, err = launch_in_process(config, workdir, capsys)
  assert code == 0, err


# --- python -m jaxnoise.noise mix | report --------------------------------------------------


def test_mix_converts_odd_files_at_their_own_rate_and_length(odd_files, tmp_path, capsys):
  names = [n for n in sorted(odd_files) if n != "silent"]
  out = tmp_path / "out"
  code, _, err = run_cli(noise_main.main, ["mix", "--noise", "pink", "--snr", "0", "--band",
                                           "50", "7000", "--out", str(out),
                                           *[str(odd_files[n]) for n in names]], capsys)
  assert code == 0, err
  for name in names:
    noisy, rate = soundfile.read(out / noise_main.output_name(name, "pink", 0.0))
    info = soundfile.info(odd_files[name])
    assert noisy.ndim == 1 and rate == info.samplerate and len(noisy) == info.frames, name
    assert np.all(np.isfinite(noisy)), name


@pytest.mark.parametrize("kind", sorted(BAD_FILE_MESSAGES) + ["missing"])
def test_mix_refuses_bad_inputs_and_writes_nothing(kind, odd_files, bad_files, tmp_path, capsys):
  """A bad file after a good one: nothing at all is written (every input is checked first)."""
  bad = bad_files.get(kind, tmp_path / "missing.wav")
  out = tmp_path / "out"
  code, _, err = run_cli(noise_main.main, ["mix", "--noise", "white", "--snr", "0", "--out",
                                           str(out), str(odd_files["stereo"]), str(bad)], capsys)
  assert_user_error(code, err, str(bad), BAD_FILE_MESSAGES.get(kind, "does not exist"))
  assert not out.exists() or not list(out.rglob("*"))


@pytest.mark.parametrize("options, fragments", [
    (["--noise", "purple"], ["unknown noise 'purple'", "white, pink, brown, blue, violet"]),
    (["--noise", "SILENT"], ["noise silent has no power in the band"]),
    (["--noise", "NAN"], ["holds NaN or Inf samples"]),
    (["--noise", "white", "--band", "50", "11025", "--input", "rate_16k"],
     ["fmax is above the Nyquist frequency 8000 Hz of sample rate 16000 Hz"]),
    (["--noise", "white", "--band", "-10", "1000"], ["expected 0 <= fmin < fmax"]),
    (["--noise", "white", "--band", "50", "nan"], ["expected 0 <= fmin < fmax"]),
    (["--noise", "white", "--snr", "inf"], ["SNRs must be finite"]),
])
def test_mix_refuses_impossible_settings(options, fragments, odd_files, bad_files, tmp_path,
                                         capsys):
  options = list(options)
  source = odd_files["stereo"]
  if "--input" in options:
    source = odd_files[options.pop(options.index("--input") + 1)]
    options.remove("--input")
  replacements = {"SILENT": str(odd_files["silent"]), "NAN": str(bad_files["nan"])}
  options = [replacements.get(option, option) for option in options]
  if "--snr" not in options:
    options += ["--snr", "0"]
  out = tmp_path / "out"
  code, _, err = run_cli(noise_main.main, ["mix", *options, "--out", str(out), str(source)],
                         capsys)
  assert_user_error(code, err, *fragments)
  assert not out.exists() or not list(out.rglob("*"))


def test_mix_without_snr_is_a_usage_error(odd_files, tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    noise_main.main(["mix", "--noise", "white", "--out", str(tmp_path), str(odd_files["stereo"])])
  assert exit_info.value.code == 2
  assert "--snr" in capsys.readouterr().err


@pytest.mark.parametrize("options, fragments", [
    (["--sample-rate", "-8000"], ["--sample-rate must be a positive number of Hz, got -8000"]),
    (["--sample-rate", "0"], ["--sample-rate must be a positive number of Hz, got 0"]),
    (["--sample-rate", "16000"], ["fmax is above the Nyquist frequency 8000 Hz"]),
    (["--sample-rate", "44100", "--band", "50", "30000"], ["fmax is above the Nyquist"]),
    (["--sample-rate", "44100", "--seconds", "nan"], ["--seconds must be a positive finite",
                                                     "nan"]),
    (["--sample-rate", "44100", "--seconds", "0"], ["--seconds must be a positive finite"]),
    (["--sample-rate", "44100", "--noise-file", "SILENT"], ["noise silent", "has no power"]),
    (["--sample-rate", "44100", "--noise-file", "TEXT"], ["cannot read", "as audio"]),
    (["--sample-rate", "44100", "--noise-file", "/nonexistent/noise.wav"],
     ["unknown noise '/nonexistent/noise.wav'"]),
])
def test_noise_report_refuses_impossible_settings(options, fragments, odd_files, bad_files,
                                                  tmp_path, capsys):
  replacements = {"SILENT": str(odd_files["silent"]), "TEXT": str(bad_files["text"])}
  options = [replacements.get(option, option) for option in options]
  out = tmp_path / "out"
  code, _, err = run_cli(noise_main.main, ["report", *options, "--out", str(out)], capsys)
  assert_user_error(code, err, *fragments)
  assert not out.exists() or not list(out.rglob("*"))


# --- Training faults ----------------------------------------------------------------------------


class TinyNet(nn.Module):
  """Features -> 3 logits through one dense layer (compiles in a moment)."""

  @nn.compact
  def __call__(self, features, train: bool = False):
    return {"logits": nn.Dense(len(CLASSES))(features.mean(axis=1))}


def tiny_spec():
  def frontend(waveform):  # [batch, samples] -> [batch, 100, 8]: the first 800 samples
    return waveform[:, :800].reshape(waveform.shape[0], 100, 8) * 100.0
  return ModelSpec(arch="tiny", config={}, sample_rate=RATE, clip_seconds=5.0,
                   band=(50.0, 11025.0), frontend=frontend, network=TinyNet(),
                   output_activation="softmax", labels=tuple(CLASSES))


def test_diverged_training_stops_before_checkpointing_it(data_root, model_dir, tmp_path):
  """A learning rate that passes the checks but blows the weights up: the run stops with a clear
  error at the first logged step whose loss is not finite, and keeps no checkpoint of it."""
  config = make_config(data_root, model_dir, tmp_path, modes=("train",),
                       **{"model.checkpoint": "", "train.optimizer": "sgd",
                          "train.learning_rate": 1e38, "train.steps": 8, "train.batch_size": 2,
                          "train.log_every": 1, "train.checkpoint_every": 1,
                          "train.augment_cycle": ("none",)})
  workdir = tmp_path / "run"
  with pytest.raises(JaxnoiseError, match=r"fold 1: the training loss became (nan|inf) by step "
                                          r"\d.*lower config.train.learning_rate") as error:
    loop.train(config, workdir, spec=tiny_spec())
  diverged_at = int(str(error.value).split("by step ")[1].split()[0])
  kept = sorted(int(p.name) for p in (workdir / "fold1" / "checkpoints").iterdir()
                if p.name.isdigit())
  assert kept and max(kept) < diverged_at
  assert not (workdir / "fold1" / "result.json").exists()
  assert not (workdir / "fold1" / "model").exists()
