"""Data sources: the same shared ESC-50 clips read as ESC-50, a folder per class, a manifest,
UrbanSound8K's layout and a TFDS dataset give the same records, the same sweep numbers and the same
trained model; re-splitting, clip policies, the inference set and bad files behave as documented.
"""
import csv
import dataclasses
import json
import pathlib
import shutil
import sys

import jax
import numpy as np
import pytest
import soundfile

from conftest import REPO_ROOT, override, write_esc50
from jaxnoise.audio import io as audio_io
from jaxnoise.data import clips as clip_loading
from jaxnoise.data import esc50, selection, sources
from jaxnoise.errors import AudioError, ConfigError, JaxnoiseError
from jaxnoise.models import mobilenet, registry
from jaxnoise.models import store as model_store
from jaxnoise.report import page
from jaxnoise.sweep import engine as engine_lib
from jaxnoise.sweep import run as sweep_run
from jaxnoise.sweep import store

if str(REPO_ROOT) not in sys.path:
  sys.path.insert(0, str(REPO_ROOT))
from configs import base  # pylint: disable=wrong-import-position

# ESC-50 targets 23..25: their id order is also their name order, so a head trained on them has
# the same outputs whether a source orders classes by ESC-50 id or by name.
CLASSES = ("breathing", "coughing", "footsteps")
PER_CLASS = 4
TFDS_SETTINGS = {"data.tfds.name_key": "filename", "data.tfds.group_key": "src_file",
                 "data.tfds.fold_key": "fold", "data.tfds.sample_rate": esc50.SAMPLE_RATE}


def unique_name(record) -> str:
  """Source id + take: one group per clip, so a folder (a group per file) splits alike."""
  return record.filename.split("-")[1] + record.filename.split("-")[2]


@pytest.fixture(scope="module")
def datasets(esc50_dir, tmp_path_factory):
  """The same 12 shared clips (3 classes x 4, fold 4) in every layout: ``{source: (root, extra
  config settings)}``."""
  top = tmp_path_factory.mktemp("sources")
  chosen = []
  for category in CLASSES:
    chosen += sorted((r for r in esc50.load_metadata(esc50_dir) if r.category == category),
                     key=lambda r: r.filename)[:PER_CLASS]
  esc_root = write_esc50(top / "esc50", [(r.fold, r.target, unique_name(r),
                                          esc50.audio_path(esc50_dir, r)) for r in chosen])
  records = esc50.load_metadata(esc_root)
  for record in records:
    shutil.copy(esc50.audio_path(esc_root, record), _mkdir(top / "folder" / record.category))
    shutil.copy(esc50.audio_path(esc_root, record), _mkdir(top / "csv" / "clips"))
    shutil.copy(esc50.audio_path(esc_root, record),
                _mkdir(top / "us8k" / "audio" / f"fold{record.fold}"))
  _write_rows(top / "csv" / "manifest.csv", ("path", "label", "fold", "group"),
              [(f"clips/{r.filename}", r.category, r.fold, r.src_file) for r in records])
  _write_rows(_mkdir(top / "us8k" / "metadata") / "UrbanSound8K.csv",
              ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"),
              [(r.filename, r.src_file, 0, 5, 1, r.fold, r.target, r.category) for r in records])
  tfds = pytest.importorskip("tensorflow_datasets", reason="the optional 'tfds' extra is absent")
  pytest.importorskip("array_record", reason="TFDS without TensorFlow reads ArrayRecord files")
  from jaxnoise.data import tfds_esc50  # pylint: disable=import-outside-toplevel
  builder = tfds_esc50.Esc50(data_dir=str(top / "tfds"), file_format="array_record")
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(esc_root)))
  return {"esc50": (esc_root, {}), "folder": (top / "folder", {}),
          "csv": (top / "csv" / "manifest.csv", {}), "urbansound8k": (top / "us8k", {}),
          "tfds:esc50": ("", {"data.tfds.data_dir": str(top / "tfds"), **TFDS_SETTINGS})}


def _mkdir(path: pathlib.Path) -> pathlib.Path:
  path.mkdir(parents=True, exist_ok=True)
  return path


def _write_rows(path, columns, rows):
  with open(path, "w", newline="", encoding="utf-8") as handle:
    writer = csv.writer(handle)
    writer.writerow(columns)
    writer.writerows(rows)


def data_config(datasets, source, cache_dir, **changes):
  root, extra = datasets[source]
  return override(base.get_config(), {
      "data.source": source, "data.root": str(root), "data.cache_dir": str(cache_dir),
      "data.classes": ",".join(CLASSES), **extra, **changes})


def test_every_source_reads_the_same_clips(datasets, tmp_path):
  seen = {}
  for source in datasets:
    config = data_config(datasets, source, tmp_path / "cache", **{"data.split_folds": 2})
    chosen = selection.select(config)
    seen[source] = [(pathlib.PurePath(c.filename).name, c.category, c.fold)
                    for c in chosen.records]
    assert chosen.label_names == CLASSES
    # The audio is the same PCM, whichever file holds it (TFDS's is decoded and rewritten).
    first = chosen.records[0]
    pcm, _ = soundfile.read(first.path, dtype="int16")
    original, _ = soundfile.read(datasets["esc50"][0] / "audio" /
                                 pathlib.PurePath(first.filename).name, dtype="int16")
    np.testing.assert_array_equal(pcm, original)
  reference = seen.pop("esc50")
  assert len(reference) == len(CLASSES) * PER_CLASS
  # Re-split into 2 folds: each class's 4 clips (one recording each) 2 and 2.
  assert sorted(fold for _, category, fold in reference if category == "coughing") == [1, 1, 2, 2]
  for source, clips in seen.items():
    assert clips == reference, source


def test_own_folds_default_split_and_folds_file(datasets, tmp_path):
  esc = sources.read_source(data_config(datasets, "esc50", tmp_path).data)
  assert {c.fold for c in esc.clips} == {4} and esc.split == ""
  us8k = sources.read_source(data_config(datasets, "urbansound8k", tmp_path).data)
  assert [c.group for c in us8k.clips] == [c.group for c in esc.clips]
  # A folder has no folds: DEFAULT_SPLIT_FOLDS (5) seeded folds, stratified.
  folder = sources.read_source(data_config(datasets, "folder", tmp_path).data)
  assert "no folds" in folder.split
  per_fold = np.bincount([c.fold for c in folder.clips], minlength=6)[1:]
  assert sorted(per_fold.tolist()) == [2, 2, 2, 3, 3]
  chosen = selection.select(data_config(datasets, "folder", tmp_path))
  selection.write_data_record(tmp_path / "run", chosen)
  rows = store.read_csv(tmp_path / "run" / sources.FOLDS_FILE)
  assert [(r["filename"], int(r["fold"])) for r in rows] == [(c.filename, c.fold)
                                                              for c in folder.clips]
  with pytest.raises(ConfigError, match="split_folds must be 0"):
    sources.read_source(data_config(datasets, "folder", tmp_path, **{"data.split_folds": 1}).data)


def test_source_errors_name_the_file_and_what_was_expected(datasets, tmp_path):
  with pytest.raises(ConfigError, match="not a data source"):
    sources.check_source_name("imagenet")
  manifest = tmp_path / "bad.csv"
  _write_rows(manifest, ("file", "label"), [("a.wav", "x")])
  with pytest.raises(JaxnoiseError, match="expected path"):
    sources.read_csv(manifest)
  _write_rows(manifest, ("path", "label"), [("missing.wav", "x")])
  with pytest.raises(JaxnoiseError, match=r"bad.csv:2: missing.wav is not a file"):
    sources.read_csv(manifest)
  folder = data_config(datasets, "folder", tmp_path, **{"data.classes": "esc19"})
  with pytest.raises(ConfigError, match="config.data.classes='all'"):
    selection.select(folder)


def test_clip_policies():
  short, long = np.arange(3, dtype=np.float32) + 1, np.arange(10, dtype=np.float32) + 1
  np.testing.assert_array_equal(clip_loading.apply_clip_policy([short, long], 4, "first"),
                                [[1, 2, 3, 0], [1, 2, 3, 4]])
  np.testing.assert_array_equal(clip_loading.apply_clip_policy([short, long], 4, "center"),
                                [[1, 2, 3, 0], [4, 5, 6, 7]])
  assert clip_loading.apply_clip_policy([short, long], 4, "pad").shape == (2, 10)
  windows = clip_loading.apply_clip_policy([short, long], 4, "windows")
  np.testing.assert_array_equal(windows[1], list(range(1, 11)) + [0, 0])
  with pytest.raises(ConfigError, match="clip_policy"):
    clip_loading.check_clip_policy("middle")


# --- The same numbers from every source ---------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  spec = registry.build_spec("mn", {"width": 0.1, "num_classes": len(CLASSES),
                                    "labels": list(CLASSES)})
  return model_store.save_model(tmp_path_factory.mktemp("model") / "mn_tiny", spec,
                                mobilenet.random_variables(spec))


def sweep_config(datasets, source, model_dir, cache_dir, **changes):
  return data_config(datasets, source, cache_dir, **{
      "modes": ("sweep",), "model.checkpoint": str(model_dir), "model.name": "tiny",
      "sweep.noises": ("white",), "sweep.snrs": (-10, 10), "sweep.save_logits": True,
      "sweep.chunk_clips": 4, "data.split_folds": 2, **changes})


def sweep_numbers(workdir):
  rows = store.read_csv(workdir / store.RESULTS_FILE)
  table = [(pathlib.PurePath(r["file"]).name, r["fold"], r["noise"], r["snr_db"], r["target_name"],
            r["predicted_name"]) for r in rows]
  logits = {path.name: np.load(path)["logits"]
            for path in sorted((workdir / "sweep" / "units").glob("*.npz"))}
  return table, logits, store.read_csv(workdir / store.ACCURACY_FILE)


def test_every_source_loads_the_same_arrays(datasets, model_dir, tmp_path):
  """What every stage decodes: the same float32 arrays, bit for bit (the sweep test below shows the
  numbers that follow are equal too)."""
  spec, _ = model_store.load_model(model_dir)
  loaded = {}
  for source in datasets:
    chosen = selection.select(data_config(datasets, source, tmp_path / "cache",
                                          **{"data.split_folds": 2}))
    loaded[source] = clip_loading.load_set([c.path for c in chosen.records], spec, "first",
                                           tmp_path / "cache")
  assert loaded["esc50"].shape == (len(CLASSES) * PER_CLASS, spec.clip_samples)
  for source, waveforms in loaded.items():
    np.testing.assert_array_equal(waveforms, loaded["esc50"], err_msg=source)


@pytest.mark.slow
def test_every_source_sweeps_to_the_same_numbers(datasets, model_dir, tmp_path):
  results = {}
  for source in datasets:
    workdir = tmp_path / source.replace(":", "_")
    sweep_run.run(sweep_config(datasets, source, model_dir, tmp_path / "cache"), workdir)
    results[source] = sweep_numbers(workdir)
  table, logits, accuracy = results.pop("esc50")
  assert len(table) == 3 * len(CLASSES) * PER_CLASS  # clean + white at 2 SNRs
  for source, (other_table, other_logits, other_accuracy) in results.items():
    assert other_table == table, source
    assert other_logits.keys() == logits.keys()
    for name in logits:  # bit for bit: the same PCM, decoded and mixed the same way
      np.testing.assert_array_equal(other_logits[name], logits[name], err_msg=source)
    assert [(r["noise"], r["snr_db"], r["accuracy"]) for r in other_accuracy] == [
        (r["noise"], r["snr_db"], r["accuracy"]) for r in accuracy], source


@pytest.mark.slow
def test_inference_set_of_another_layout_sweeps_like_the_test_folds(datasets, model_dir,
                                                                     tmp_path):
  reference = tmp_path / "reference"
  sweep_run.run(sweep_config(datasets, "esc50", model_dir, tmp_path / "cache",
                             **{"data.split_folds": 0}), reference)
  inference = tmp_path / "inference"
  config = sweep_config(datasets, "esc50", model_dir, tmp_path / "cache", **{
      "data.split_folds": 0, "sweep.inference_root": str(datasets["csv"][0].parent)})
  sweep_run.run(config, inference)
  expected, logits, _ = sweep_numbers(reference)
  got, inference_logits, _ = sweep_numbers(inference)
  assert got == expected
  for name in logits:
    np.testing.assert_array_equal(inference_logits[name], logits[name])
  # A clip of a class the model lacks: refused, naming the class and its count.
  extra = tmp_path / "extra"
  shutil.copytree(datasets["folder"][0], extra)
  shutil.copytree(extra / "coughing", extra / "sneezing")
  with pytest.raises(ConfigError, match=r"4 clip\(s\) of 1 class\(es\) the model does not have: "
                                        r"\{'sneezing': 4\}"):
    sweep_run.run(sweep_config(datasets, "esc50", model_dir, tmp_path / "cache",
                               **{"sweep.inference_root": str(extra)}), tmp_path / "refused")


def test_windows_policy_averages_window_scores(model_dir):
  """A 2.5-s model on 5-s clips: 'windows' averages the scores of the two halves (checked
  against the network run on each half)."""
  spec, variables = model_store.load_model(model_dir)
  half = dataclasses.replace(spec, clip_seconds=2.5)
  clean = np.random.default_rng(0).standard_normal((2, 2 * half.clip_samples)).astype(np.float32)
  windowed = jax.jit(lambda v, x: engine_lib.window_scores(half, v, x, x, half.clip_samples)[0])
  scores = windowed(variables, clean)
  # The same network on [2 clips x 2 windows] stacked as 4 clips: one compilation, no windows.
  stacked = jax.jit(lambda v, x: half.scores(half.apply(v, x)["logits"]))(
      variables, clean.reshape(4, half.clip_samples))
  per_window = [np.asarray(stacked)[i::2] for i in range(2)]
  np.testing.assert_allclose(np.asarray(scores), (per_window[0] + per_window[1]) / 2, rtol=1e-5,
                             atol=1e-6)


# --- Bad files ----------------------------------------------------------------------------------


def truncated_copy(source: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
  """``source`` cut to half its bytes: the header still announces every frame."""
  data = source.read_bytes()
  target.write_bytes(data[:len(data) // 2])
  return target


def test_truncated_wav_is_named_or_skipped_and_listed(datasets, model_dir, tmp_path):
  root = tmp_path / "folder"
  shutil.copytree(datasets["folder"][0], root)
  victim = sorted((root / "coughing").iterdir())[0]
  truncated_copy(victim, victim)
  (root / "footsteps" / "notes.wav").write_text("not audio")
  # libsndfile reads the truncated file as a shorter clip, silently: the header check does not.
  assert 0 < soundfile.info(str(victim)).frames < esc50.CLIP_SAMPLES
  with pytest.raises(AudioError, match=f"{victim.name} is truncated: its WAV header announces "
                                       r"441000 bytes of audio but the file holds \d+"):
    audio_io.load_audio(victim)
  changes = {"data.source": "folder", "data.root": str(root), "data.split_folds": 0}
  with pytest.raises(AudioError, match=f"{victim.name} is truncated.*skip_bad_files=True"):
    sweep_run.run(sweep_config(datasets, "folder", model_dir, tmp_path / "cache", **changes),
                  tmp_path / "refused")
  assert not (tmp_path / "refused" / store.RESULTS_FILE).exists()
  workdir = tmp_path / "skipped"
  sweep_run.run(sweep_config(datasets, "folder", model_dir, tmp_path / "cache",
                             **{**changes, "data.skip_bad_files": True}), workdir)
  run_info = json.loads((workdir / store.RUN_FILE).read_text())
  assert sorted(entry["file"] for entry in run_info["skipped_files"]) == [
      f"coughing/{victim.name}", "footsteps/notes.wav"]
  assert run_info["clips"] == len(CLASSES) * PER_CLASS - 1
  assert "2 unreadable file(s) skipped" in page.skipped_text(run_info["skipped_files"])
  data_record = json.loads((workdir / selection.DATA_FILE).read_text())
  assert len(data_record["skipped_files"]) == 2


def test_predict_and_noise_mix_refuse_a_truncated_wav(datasets, model_dir, tmp_path, capsys):
  from jaxnoise import predict  # pylint: disable=import-outside-toplevel
  from jaxnoise.noise import __main__ as noise_cli  # pylint: disable=import-outside-toplevel
  good = sorted((datasets["folder"][0] / "coughing").iterdir())[0]
  bad = truncated_copy(good, tmp_path / "cut.wav")
  with pytest.raises(AudioError, match="cut.wav is truncated"):
    predict.main(["--checkpoint", str(model_dir), str(good), str(bad)])
  assert capsys.readouterr().out == ""
  with pytest.raises(AudioError, match="cut.wav is truncated"):
    noise_cli.mix_files([good, bad], ["white"], [0.0], (50.0, 11025.0), tmp_path / "out")
  assert not (tmp_path / "out").exists()
  summary = noise_cli.mix_files([good, bad], ["white"], [0.0], (50.0, 11025.0), tmp_path / "out",
                                skip_bad_files=True)
  assert summary["skipped"] == [bad] and len(summary["written"]) == 1
  assert "skipped" in capsys.readouterr().err
  # Skipped on request, named on stderr; a labelled dataset's files come with their labels.
  assert predict.main(["--checkpoint", str(model_dir), "--json", "--skip-bad-files", str(bad),
                       "--data", f"csv:{datasets['csv'][0]}"]) == 0
  out, err = capsys.readouterr()
  lines = [json.loads(line) for line in out.splitlines()]
  assert "skipped" in err and "cut.wav is truncated" in err
  assert [(pathlib.Path(line["file"]).name, line["label"]) for line in lines] == [
      (pathlib.Path(c.path).name, c.category) for c in sources.read_csv(datasets["csv"][0]).clips]


# --- Label maps ---------------------------------------------------------------------------------


def test_label_map_suggestion_on_esc50_names(capsys):
  from jaxnoise.data import label_map, zero_shot  # pylint: disable=import-outside-toplevel
  assert label_map.main(["--labels", "esc50"]) == 0
  out, err = capsys.readouterr()
  suggestion = json.loads(out)
  assert list(suggestion) == list(esc50.CLASS_NAMES)
  assert suggestion["crying_baby"][:2] == ["Baby cry, infant cry", "Crying, sobbing"]
  assert suggestion["sneezing"] == ["Sneeze"] and suggestion["toilet_flush"] == ["Toilet flush"]
  assert suggestion["cow"] == [] and suggestion["hen"] == []  # AudioSet says 'Cattle', 'Fowl'
  assert "44 of 50 labels have a suggestion" in err and "none for: cow, hen" in err
  # 43 of the 50 suggestions share a class with the hand-made ESC-50 map (zero_shot.py).
  agree = [k for k, v in suggestion.items() if set(v) & set(zero_shot.ESC50_TO_AUDIOSET[k])]
  assert len(agree) == 43


def test_label_map_is_checked_and_used_for_any_labels(tmp_path):
  from jaxnoise.data import label_map, zero_shot  # pylint: disable=import-outside-toplevel
  from jaxnoise.data.labels import audioset_labels  # pylint: disable=import-outside-toplevel
  from jaxnoise.sweep import readout as readout_lib  # pylint: disable=import-outside-toplevel
  path = tmp_path / "map.json"
  path.write_text(json.dumps({"doorbell": ["Doorbell", "Ding-dong"], "kettle": []}))
  mapping = label_map.load(path)
  readout = readout_lib.make_readout(audioset_labels(), ("doorbell",), (0,), mapping)
  assert readout.kind == "zero-shot"
  assert [audioset_labels()[i] for i in readout.describe()["outputs"][0]] == ["Doorbell",
                                                                             "Ding-dong"]
  with pytest.raises(ConfigError, match="no AudioSet mapping for the class 'kettle' in "
                                        "config.model.label_map"):
    zero_shot.index_table(("doorbell", "kettle"), mapping)
  path.write_text(json.dumps({"doorbell": ["Door bell"]}))
  with pytest.raises(ConfigError, match="'Door bell', which is not an AudioSet class name"):
    label_map.load(path)


@pytest.mark.slow
def test_every_source_trains_the_same_model(datasets, tmp_path):
  """A tiny model trained on fold 2 and tested on fold 1 of the re-split: the same variables, bit
  for bit, and the same predictions, whichever layout the clips came from."""
  from test_train import (assert_trees_equal, restored_variables, tiny_config,  # pylint: disable=import-outside-toplevel
                          tiny_spec)
  from jaxnoise.train import loop  # pylint: disable=import-outside-toplevel
  trained = {}
  for source in datasets:
    root, extra = datasets[source]
    config = override(tiny_config(root, tmp_path / "cache", batch_size=4, steps=4), {
        "data.source": source, "data.classes": ",".join(CLASSES), "data.split_folds": 2,
        **extra})
    workdir = tmp_path / source.replace(":", "_")
    result = loop.train(config, workdir, spec=tiny_spec())[1]
    predictions = [(pathlib.PurePath(r["filename"]).name, r["category"], r["predicted_category"])
                   for r in store.read_csv(workdir / "fold1" / "predictions.csv")]
    folds = [(pathlib.PurePath(r["filename"]).name, r["fold"])
             for r in store.read_csv(workdir / sources.FOLDS_FILE)]
    trained[source] = (result, predictions, folds, restored_variables(result["model_dir"]))
  result, predictions, folds, variables = trained.pop("esc50")
  assert result["test_clips"] == 6 and result["train_clips"] == 6
  for source, (other, other_predictions, other_folds, other_variables) in trained.items():
    assert (other["accuracy"], other["test_loss"]) == (result["accuracy"], result["test_loss"])
    assert other_predictions == predictions and other_folds == folds, source
    assert_trees_equal(other_variables, variables)


@pytest.mark.slow
def test_zero_shot_sweep_of_other_labels_reads_the_label_map(datasets, tmp_path):
  """An AudioSet head on a folder whose labels are not ESC-50's: the label map decides which
  outputs score each label (run.json's readout), and an unmapped label stops the sweep first."""
  spec = registry.build_spec("mn", {"width": 0.1})
  model = model_store.save_model(tmp_path / "audioset", spec, mobilenet.random_variables(spec))
  root = tmp_path / "mine"
  for old, new in zip(CLASSES, ("breath", "cough", "steps")):
    shutil.copytree(datasets["folder"][0] / old, root / new)
  mapping = {"breath": ["Breathing", "Gasp"], "cough": ["Cough"], "steps": ["Walk, footsteps"]}
  (tmp_path / "map.json").write_text(json.dumps(mapping))
  config = sweep_config(datasets, "esc50", model, tmp_path / "cache", **{
      "data.source": "folder", "data.root": str(root), "data.classes": "all",
      "model.label_map": str(tmp_path / "map.json"), "sweep.snrs": (0,)})
  sweep_run.run(config, tmp_path / "run")
  readout = json.loads((tmp_path / "run" / store.RUN_FILE).read_text())["readout"]["tiny"]
  assert readout["kind"] == "zero-shot" and readout["names"] == ["breath", "cough", "steps"]
  labels = spec.labels
  assert [[labels[i] for i in row] for row in readout["outputs"]] == list(mapping.values())
  rows = store.read_csv(tmp_path / "run" / store.RESULTS_FILE)
  assert {r["predicted_name"] for r in rows} <= {"breath", "cough", "steps"}
  (tmp_path / "map.json").write_text(json.dumps({"breath": ["Breathing"], "cough": ["Cough"]}))
  with pytest.raises(ConfigError, match="no AudioSet mapping for the class 'steps'"):
    sweep_run.run(config, tmp_path / "refused")
  assert not (tmp_path / "refused").exists()
