"""The sweep: engine vs a plain per-clip scipy loop, sharding (8 devices, 2 processes), resume, store.

Every sweep here is the real AudioSet mn04_as (converted from ../shared/golden/mn) classifying the 5
shared ESC-50 clips outside fold 4 zero-shot, with white noise and ESC-50 dog noise at -10 and 10 dB.
"""
import dataclasses
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import zlib

import jax
import librosa
import numpy as np
import pytest
import scipy.integrate
import scipy.signal

from conftest import REPO_ROOT, override
from jaxnoise.data import esc50, sources, zero_shot
from jaxnoise.errors import ConfigError
from jaxnoise.models import mobilenet, registry, store as model_store
from jaxnoise.noise import colored_noise
from jaxnoise.runtime import files
from jaxnoise.sweep import engine as engine_lib
from jaxnoise.data import noises as noise_lib
from jaxnoise.sweep import readout as readout_lib
from jaxnoise.sweep import run as sweep_run
from jaxnoise.sweep import sharding, store

if str(REPO_ROOT) not in sys.path:
  sys.path.insert(0, str(REPO_ROOT))
from configs import base  # pylint: disable=wrong-import-position

SNRS = (-10.0, 10.0)
NOISES = ("white", "esc50:dog")
MODEL_NAME = "mn04_as"
SUBPROCESS_TIMEOUT = 420


@pytest.fixture(scope="module")
def model_dir(golden_dir, tmp_path_factory):
  pytest.importorskip("torch", reason="converting the mn04_as checkpoint needs torch")
  from jaxnoise import convert  # pylint: disable=import-outside-toplevel
  return convert.convert_to_directory("mn", golden_dir / "mn" / "mn04_as_mAP_432.pt",
                                      tmp_path_factory.mktemp("model") / "mn04_as")


@pytest.fixture(scope="module")
def settings(model_dir, esc50_dir, noise_dir, tmp_path_factory):
  """Everything a tiny sweep needs, as config overrides (shared by in-process and CLI runs)."""
  return {
      "modes": ("sweep",), "model.checkpoint": str(model_dir), "model.name": MODEL_NAME,
      "data.root": str(esc50_dir), "data.cache_dir": str(tmp_path_factory.mktemp("cache")),
      "sweep.noises": NOISES, "sweep.esc50_noise_dirs": (str(noise_dir / "esc50"),),
      "sweep.snrs": SNRS, "sweep.folds": (2, 5), "sweep.save_logits": True,
      "sweep.chunk_clips": 2}


def make_config(settings, **changes):
  return override(base.get_config(), {**settings, **changes})


def flag_value(value) -> str:
  if isinstance(value, tuple):
    return "(" + ",".join(json.dumps(v) if isinstance(v, str) else repr(v) for v in value) + ",)"
  return str(value)


def launch_command(settings, workdir, **changes):
  arguments = [sys.executable, str(REPO_ROOT / "launch.py"),
               f"--config={REPO_ROOT / 'configs' / 'base.py'}", f"--workdir={workdir}"]
  for key, value in {**settings, **changes}.items():
    arguments.append(f"--config.{key}={flag_value(value)}")
  return arguments


def subprocess_env(**extra):
  env = dict(os.environ, JAX_PLATFORMS="cpu", **extra)
  env.pop("XLA_FLAGS", None)
  env.update(extra)
  return env


@pytest.fixture(scope="module")
def baseline(settings, tmp_path_factory):
  """The tiny sweep on one device, in this process."""
  workdir = tmp_path_factory.mktemp("baseline")
  summary = sweep_run.run(make_config(settings), workdir)
  assert summary["computed"] == 3  # clean, white, dog
  return workdir


def read_rows(workdir):
  return files.read_csv(pathlib.Path(workdir) / store.RESULTS_FILE)


def unit_logits(workdir, noise):
  files = sorted((pathlib.Path(workdir) / "sweep" / "units").glob(f"all-{noise}*.npz"))
  return np.load(files[0])["logits"]


# --- The engine against a plain per-clip loop ---------------------------------------------------


def study_band_power(waveform, sample_rate, band):
  """The study's formula (scipy, float64)."""
  frequencies, density = scipy.signal.periodogram(np.asarray(waveform, np.float64), sample_rate)
  low, high = np.argmax(frequencies > band[0]) - 1, np.argmax(frequencies > band[1]) - 1
  return scipy.integrate.trapezoid(density[low:high], frequencies[low:high])


def test_engine_equals_per_clip_scipy_loop(baseline, model_dir, esc50_dir, noise_dir):
  spec, variables = model_store.load_model(model_dir)
  records = sorted((r for r in esc50.load_metadata(esc50_dir) if r.fold in (2, 5)),
                   key=lambda r: (r.fold, r.filename))
  target_ids = esc50.class_targets("esc19", "clock_tick")
  label_names = tuple(esc50.CLASS_NAMES[t] for t in target_ids)
  tables = [zero_shot.audioset_indices(name) for name in label_names]
  length = spec.clip_samples
  dog_file = sorted(noise_dir.glob("esc50/*-0.wav"))[0]
  noises = {
      "white": np.asarray(colored_noise(jax.random.key(0), length, "white"), np.float64),
      "esc50:dog": librosa.load(dog_file, sr=spec.sample_rate)[0][:length].astype(np.float64)}
  forward = jax.jit(lambda x: spec.apply(variables, x)["logits"])

  def classify(waveform):
    logits = np.asarray(forward(waveform[None].astype(np.float32)))[0]
    scores = 1 / (1 + np.exp(-logits.astype(np.float64)))
    return target_ids[int(np.argmax([scores[list(rows)].max() for rows in tables]))], logits

  expected, reference_logits = {}, {}
  for index, record in enumerate(records):
    clip = librosa.load(esc50_dir / "audio" / record.filename, sr=spec.sample_rate)[0]
    clip = clip.astype(np.float64)
    expected[("clean", "", record.filename)] = classify(clip)[0]
    clip_power = study_band_power(clip, spec.sample_rate, spec.band)
    for name, noise in noises.items():
      noise_power = study_band_power(noise, spec.sample_rate, spec.band)
      for position, snr in enumerate(SNRS):
        gain = np.sqrt(clip_power * 10 ** (-snr / 10) / noise_power)
        predicted, logits = classify(clip + gain * noise)
        expected[(name, f"{snr:g}", record.filename)] = predicted
        reference_logits[(name, index, position)] = logits
  rows = read_rows(baseline)
  assert len(rows) == len(expected) == 25
  actual = {(row["noise"], row["snr_db"], row["file"]): int(row["predicted"]) for row in rows}
  assert actual == expected
  assert len(set(expected.values())) > 1  # the decisions are not all one class
  for name in noises:
    logits = unit_logits(baseline, name.replace(":", "_"))
    for (noise, index, position), reference in reference_logits.items():
      if noise == name:
        np.testing.assert_allclose(logits[index, position], reference, atol=2e-3)


# --- Sharding -----------------------------------------------------------------------------------


def test_snr_axis_size_minimises_padding():
  # (devices, SNRs, clips per chunk) -> SNR-axis size: padded mixes per chunk, ties to clips.
  assert sharding.snr_devices_for(8, 13, 16) == 1   # 13 x 16, no padding
  assert sharding.snr_devices_for(8, 2, 2) == 2     # 2 x 4 beats 2 x 8
  assert sharding.snr_devices_for(8, 4, 1) == 4     # 4 x 2 beats 4 x 4 and 4 x 8
  assert sharding.snr_devices_for(8, 13, 1) == 8    # 16 x 1 beats 14 x 4 and 13 x 8
  assert sharding.snr_devices_for(6, 3, 16) == 3    # 3 x 16 beats 3 x 18
  assert sharding.snr_devices_for(1, 13, 16) == 1


def test_eight_simulated_devices_give_the_same_table(baseline, settings, tmp_path):
  workdir = tmp_path / "eight"
  process = subprocess.run(
      launch_command(settings, workdir, **{"sweep.snr_devices": 2}), capture_output=True,
      text=True, timeout=SUBPROCESS_TIMEOUT, cwd=REPO_ROOT,
      env=subprocess_env(XLA_FLAGS="--xla_force_host_platform_device_count=8"))
  assert process.returncode == 0, process.stderr[-3000:]
  assert "'clips': 4, 'snrs': 2" in process.stderr
  assert read_rows(workdir) == read_rows(baseline)
  assert json.loads((workdir / store.RUN_FILE).read_text())["devices"]["count"] == 8
  for noise in ("white", "esc50_dog"):
    np.testing.assert_allclose(unit_logits(workdir, noise), unit_logits(baseline, noise),
                               atol=1e-4)


def free_port() -> int:
  with socket.socket() as probe:
    probe.bind(("localhost", 0))
    return probe.getsockname()[1]


def test_two_processes_with_the_distributed_runtime(baseline, settings, tmp_path):
  workdir = tmp_path / "two"
  port = free_port()
  processes = [subprocess.Popen(
      launch_command(settings, workdir, **{
          "distributed.initialize": True, "distributed.coordinator_address": f"localhost:{port}",
          "distributed.num_processes": 2, "distributed.process_id": process_id}),
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT,
      env=subprocess_env()) for process_id in (0, 1)]
  try:
    outputs = [process.communicate(timeout=SUBPROCESS_TIMEOUT) for process in processes]
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
  for process, (_, stderr) in zip(processes, outputs):
    assert process.returncode == 0, stderr[-3000:]
  assert "2 process(es)" in outputs[0][1]
  assert read_rows(workdir) == read_rows(baseline)


# --- Resume and the store -----------------------------------------------------------------------


def test_interrupted_sweep_resumes_and_skips_done_units(baseline, settings, tmp_path,
                                                        monkeypatch):
  workdir = tmp_path / "resumed"
  config = make_config(settings)
  calls = []
  original = engine_lib.SweepEngine.run

  def interrupted(self, *arguments, **keywords):
    calls.append(1)
    if len(calls) == 2:
      raise KeyboardInterrupt
    return original(self, *arguments, **keywords)

  monkeypatch.setattr(engine_lib.SweepEngine, "run", interrupted)
  with pytest.raises(KeyboardInterrupt):
    sweep_run.run(config, workdir)
  monkeypatch.undo()
  units = sorted(path.name for path in (workdir / "sweep" / "units").iterdir())
  assert units == ["all-clean.csv", "all-clean.npz"]
  assert not (workdir / store.RESULTS_FILE).exists()
  clean_written = (workdir / "sweep" / "units" / "all-clean.csv").stat().st_mtime_ns

  # The rest runs the SNRs one network call at a time (lax.map, not one vmap): same tables.
  summary = sweep_run.run(make_config(settings, **{"sweep.snr_batch": 1}), workdir)
  assert summary["computed"] == 2
  assert (workdir / "sweep" / "units" / "all-clean.csv").stat().st_mtime_ns == clean_written
  for name in (store.RESULTS_FILE, store.ACCURACY_FILE):
    assert (workdir / name).read_bytes() == (baseline / name).read_bytes()
  assert sweep_run.run(config, workdir)["computed"] == 0
  assert (workdir / store.RESULTS_FILE).read_bytes() == (baseline / store.RESULTS_FILE).read_bytes()


def test_workdir_of_other_settings_is_refused(baseline, settings, tmp_path):
  workdir = tmp_path / "other"
  shutil.copytree(baseline, workdir)
  with pytest.raises(ConfigError, match="snrs"):
    sweep_run.run(make_config(settings, **{"sweep.snrs": (-20.0, 10.0)}), workdir)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
  path = tmp_path / store.RESULTS_FILE
  files.atomic_write_text(path, "old\n")

  def broken_disk(_):
    raise OSError("disk full")

  monkeypatch.setattr(os, "fsync", broken_disk)
  with pytest.raises(OSError, match="disk full"):
    files.atomic_write_csv(path, ("a",), [{"a": 1}])
  assert path.read_text() == "old\n"
  assert [p.name for p in tmp_path.iterdir()] == [store.RESULTS_FILE]


def test_tables_of_the_baseline(baseline):
  rows = read_rows(baseline)
  assert list(rows[0]) == list(store.RESULT_COLUMNS)
  clean = [row for row in rows if row["noise"] == "clean"]
  assert len(clean) == 5 and all(row["snr_db"] == "" for row in clean)
  accuracy = store.read_accuracy(baseline)
  assert [(row["noise"], row["snr_db"]) for row in accuracy] == [
      ("clean", ""), ("white", "-10"), ("white", "10"), ("esc50:dog", "-10"), ("esc50:dog", "10")]
  for row in accuracy:
    subset = [r for r in rows if r["noise"] == row["noise"] and r["snr_db"] == row["snr_db"]]
    assert int(row["n"]) == len(subset) == 5
    assert float(row["accuracy"]) == np.mean([r["target"] == r["predicted"] for r in subset])
    assert row["ci95_low"] == "" and row["realisations"] == "1"
  metadata = json.loads((baseline / store.RUN_FILE).read_text())
  assert metadata["seeds"]["seed"] == 0
  assert metadata["models"][0]["variables_sha256"]
  assert metadata["versions"]["jax"] == jax.__version__


# --- Noises and realisations --------------------------------------------------------------------


def test_realisations_and_fresh_noise_per_clip(settings, tmp_path, noise_dir):
  workdir = tmp_path / "fresh"
  config = make_config(settings, **{"sweep.noises": ("pink", "esc50:dog"), "sweep.snrs": (0.0,),
                                    "sweep.realisations": 2, "sweep.fresh_noise_per_clip": True,
                                    "sweep.save_logits": False})
  sweep_run.run(config, workdir)
  rows = read_rows(workdir)
  files = sorted({row["file"] for row in rows}, key=lambda f: (f[0], f))
  pink = {(row["realisation"], row["file"]): row["noise_source"] for row in rows
          if row["noise"] == "pink"}
  assert len(set(pink.values())) == 10  # a distinct draw per clip and realisation
  number = zlib.crc32(files[0].encode()) & 0x7FFFFFFF
  assert pink[("1", files[0])] == f"seed 0 realisation 1 clip {number}"
  dogs = sorted(path.name for path in noise_dir.glob("esc50/*-0.wav"))
  for row in rows:
    if row["noise"] == "esc50:dog":
      position = files.index(row["file"])
      assert row["noise_source"] == dogs[(position + int(row["realisation"])) % len(dogs)]
  accuracy = [row for row in store.read_accuracy(workdir) if row["noise"] != "clean"]
  assert {row["realisations"] for row in accuracy} == {"2"}
  assert {row["n"] for row in accuracy} == {"10"}
  for row in accuracy:
    if row["ci95_low"]:
      assert float(row["ci95_low"]) <= float(row["accuracy"]) <= float(row["ci95_high"])


def test_trained_fold_models_are_swept_on_their_own_fold(settings, tmp_path):
  """The 'train' mode's fold{k}/model are swept, each on fold k, even where the config names a
  checkpoint (there it was the starting point of the training)."""
  names = tuple(esc50.CLASS_NAMES[t] for t in esc50.class_targets("esc19", "clock_tick"))
  spec = dataclasses.replace(registry.build_spec("mn", {"width": 0.1, "num_classes": 19}),
                             labels=names)
  workdir = tmp_path / "trained"
  for fold in (2, 5):
    variables = mobilenet.random_variables(spec, seed=fold)
    model_store.save_model(workdir / f"fold{fold}" / "model", spec, variables)
  config = make_config(settings, **{"model.name": "", "sweep.snrs": (0.0,),
                                    "sweep.noises": ("white",), "sweep.save_logits": False})
  sweep_run.run(config, workdir)
  rows = read_rows(workdir)
  assert {row["model"] for row in rows} == {"mn"}
  assert sorted(path.name for path in (workdir / "sweep" / "units").iterdir()) == [
      "fold2-clean.csv", "fold2-white-42cfcda4-r0.csv", "fold5-clean.csv",
      "fold5-white-42cfcda4-r0.csv"]
  assert sorted(row["fold"] for row in rows if row["noise"] == "clean") == ["2", "2", "2", "5", "5"]
  metadata = json.loads((workdir / store.RUN_FILE).read_text())
  assert [(m["folds"], m["checkpoint"].split("/")[-2]) for m in metadata["models"]] == [
      ([2], "fold2"), ([5], "fold5")]
  config.model.checkpoint = ""
  with pytest.raises(ConfigError, match="run the 'train' mode first"):
    sweep_run.run(config, tmp_path / "empty")


def test_per_clip_colored_noise_comes_from_the_documented_keys(esc50_dir):
  spec = registry.build_spec("mn", {"width": 0.1})
  records = sorted((r for r in esc50.load_metadata(esc50_dir) if r.fold in (2, 5)),
                   key=lambda r: r.filename)
  readout = readout_lib.make_readout(spec.labels, ("keyboard_typing",), (32,))
  clips = np.zeros((3, 4000), np.float32)
  engine = engine_lib.SweepEngine(spec, readout, {}, clips, sharding.make_mesh(1), chunk_clips=2)
  names = [r.filename for r in records[:3]]
  pink = noise_lib.NoiseType("pink", color="pink")
  fresh = noise_lib.NoiseMaker(engine, names, 7, fresh_per_clip=True)
  noise_for_chunk, per_clip = fresh.for_unit(noise_lib.Unit(pink, 1))
  assert per_clip
  noise, power = noise_for_chunk(1)  # the second chunk: clip 2 and one padding row
  expected = colored_noise(jax.random.fold_in(jax.random.fold_in(jax.random.key(7), 1),
                                              zlib.crc32(names[2].encode()) & 0x7FFFFFFF),
                           4000, "pink")
  np.testing.assert_array_equal(np.asarray(noise)[0], np.asarray(expected))
  assert np.asarray(power).shape == (2,)
  nominal = noise_lib.NoiseMaker(engine, names, 7, fresh_per_clip=False)
  noise_for_chunk, per_clip = nominal.for_unit(noise_lib.Unit(pink, 0))
  assert not per_clip
  np.testing.assert_array_equal(np.asarray(noise_for_chunk(0)[0])[0],
                                np.asarray(colored_noise(jax.random.key(7), 4000, "pink")))


def test_noise_names(esc50_dir, noise_dir, tmp_path):
  every = sources.read_esc50(esc50_dir).clips
  tested = esc50.CLASS_NAMES[20:40]
  parsed = noise_lib.parse_noises(
      ["white", "esc50:rain", f"tv={noise_dir / 'swch-audio-classification'}",
       str(noise_dir / "whisp" / "wind.wav")], records=every, data_root=esc50_dir,
      esc50_noise_dirs=[noise_dir / "esc50"], tested_classes=tested)
  assert [n.name for n in parsed] == ["white", "esc50:rain", "tv", "wind"]
  assert parsed[0].color == "white" and parsed[0].realisations(5) == 5
  assert [p.name for p in parsed[1].recordings] == sorted(
      p.name for p in noise_dir.glob("esc50/*-10.wav"))
  assert parsed[1].realisations(5) == 4
  assert sorted(p.name for p in parsed[2].recordings) == ["music.wav", "speech.wav"]
  by_category = noise_lib.parse_noises([str(noise_dir)])
  assert sorted(n.name for n in by_category) == ["car_horn", "dog", "engine", "music", "rain",
                                                 "speech", "train", "wind"]
  assert len(next(n for n in by_category if n.name == "engine").recordings) == 5
  with pytest.raises(ConfigError, match="not an ESC-50 class"):
    noise_lib.parse_noises(["esc50:dragon"], records=every, data_root=esc50_dir)
  with pytest.raises(ConfigError, match="under test"):
    noise_lib.parse_noises(["esc50:snoring"], records=every, data_root=esc50_dir,
                           tested_classes=tested)
  with pytest.raises(ConfigError, match="no ESC-50 clip of class dog"):
    noise_lib.parse_noises(["esc50:dog"], records=every, data_root=esc50_dir)
  with pytest.raises(ConfigError, match="does not exist"):
    noise_lib.parse_noises([str(tmp_path / "missing.wav")])
  with pytest.raises(ConfigError, match="several noises"):
    noise_lib.parse_noises(["white", "white"])


def test_sweep_settings_are_checked(settings):
  for changes, message in [({"sweep.snrs": ()}, "empty"), ({"sweep.snrs": (1.0, 1.0)}, "twice"),
                           ({"sweep.realisations": 0}, "realisations"),
                           ({"sweep.chunk_clips": 0}, "chunk_clips")]:
    with pytest.raises(ConfigError, match=message):
      sweep_run.check_sweep_config(make_config(settings, **changes).sweep)


# --- Readout ------------------------------------------------------------------------------------


def test_zero_shot_map_covers_esc50_with_distinct_audioset_names():
  from jaxnoise.data.labels import audioset_labels  # pylint: disable=import-outside-toplevel
  assert tuple(zero_shot.ESC50_TO_AUDIOSET) == esc50.CLASS_NAMES
  used = [name for names in zero_shot.ESC50_TO_AUDIOSET.values() for name in names]
  assert len(used) == len(set(used))
  assert set(used) <= set(audioset_labels())
  indices, valid = zero_shot.index_table(["dog", "snoring"])
  labels = audioset_labels()
  assert [labels[i] for i in indices[1][valid[1]]] == ["Snoring"]
  assert labels[indices[0][0]] == "Dog" and valid[0].sum() == 7


def test_readouts():
  scores = np.zeros((2, 527), np.float32)
  scores[0, 43] = 0.9   # Snoring
  scores[1, 75] = 0.8   # Bark
  scores[1, 43] = 0.3
  readout = readout_lib.make_readout(registry.build_spec("mn", {"width": 0.1}).labels,
                                     ("dog", "snoring"), (0, 28))
  assert readout.kind == "zero-shot"
  np.testing.assert_allclose(readout.class_scores(scores), [[0.0, 0.9], [0.8, 0.3]])
  head = readout_lib.make_readout(("crying_baby", "sneezing", "snoring"), ("snoring", "sneezing"),
                                  (28, 21))
  assert head.kind == "head"
  np.testing.assert_allclose(head.class_scores(np.asarray([[1.0, 2.0, 3.0]])), [[3.0, 2.0]])
  with pytest.raises(ConfigError, match="name neither"):
    readout_lib.make_readout(("a", "b"), ("snoring",), (28,))
