"""ESC-50 metadata, class subsets, folds, download handling, clip loading/caching, TFDS builder."""
import io
import pathlib
import urllib.error
import zipfile

import librosa
import numpy as np
import pytest
import soundfile

from jaxnoise.audio import io as audio_io
from jaxnoise.data import clips, esc50, sources
from jaxnoise.errors import AudioError, ConfigError, JaxnoiseError

SHARED_FOLD_COUNTS = {2: 3, 4: 160, 5: 2}  # ../shared/data/README.md


def write_metadata(root, rows):
  (root / "meta").mkdir(parents=True, exist_ok=True)
  (root / "audio").mkdir(parents=True, exist_ok=True)
  lines = ["filename,fold,target,category,esc10,src_file,take"]
  lines += [f"{name},{fold},{target},{esc50.CLASS_NAMES[target]},False,{src},A"
            for name, fold, target, src in rows]
  (root / "meta" / "esc50.csv").write_text("\n".join(lines) + "\n")


# --- Metadata, classes, folds -------------------------------------------------------------------


def test_shared_metadata_matches_its_readme(esc50_dir):
  records = esc50.load_metadata(esc50_dir)
  assert len(records) == 165
  assert {f: sum(r.fold == f for r in records) for f in esc50.folds_present(records)} == \
      SHARED_FOLD_COUNTS
  first = next(r for r in records if r.filename == "2-104168-A-32.wav")
  assert (first.fold, first.target, first.category, first.src_file, first.take) == \
      (2, 32, "keyboard_typing", "104168", "A")
  assert all(r.filename.split("-")[0] == str(r.fold) for r in records)
  assert all(r.filename[:-4].split("-")[-1] == str(r.target) for r in records)


def test_esc19_drops_clock_tick_and_keeps_esc50_ids(esc50_dir):
  kept, names, targets = sources.select_classes(sources.read_esc50(esc50_dir), "esc19",
                                                "clock_tick")
  assert targets == tuple(t for t in range(20, 40) if t != 38)
  assert len(names) == 19 and "clock_tick" not in names and names[0] == "crying_baby"
  assert len(kept) == 165 - 8
  labels = sources.label_indices(kept, targets)
  assert all(names[label] == record.category for record, label in zip(kept, labels))


def test_class_subsets():
  assert esc50.class_targets("esc50") == tuple(range(50))
  assert esc50.class_targets("esc19", "glass_breaking") == tuple(range(20, 39))
  assert esc50.class_targets("esc19", 20) == tuple(range(21, 40))
  assert esc50.class_targets("37, sneezing,20") == (20, 21, 37)
  assert esc50.class_targets([32, "dog"]) == (0, 32)
  with pytest.raises(ConfigError, match="barking"):
    esc50.class_targets("20,barking")
  with pytest.raises(ConfigError, match="dropped_class"):
    esc50.class_targets("esc19", "dog")
  with pytest.raises(ConfigError, match="outside"):
    esc50.class_targets("50")
  with pytest.raises(ConfigError, match="names no class"):
    esc50.class_targets(" , ")


def test_split_fold_is_the_study_rotation(esc50_dir):
  records = esc50.load_metadata(esc50_dir)
  train, test = esc50.split_fold(records, 2)
  assert len(test) == 3 and {r.fold for r in train} == {4, 5} and len(train) == 162
  train, test = esc50.split_fold(records, 1)
  assert not test and len(train) == 165
  with pytest.raises(ConfigError, match="fold 6"):
    esc50.split_fold(records, 6)


def test_metadata_errors_name_file_and_line(tmp_path):
  write_metadata(tmp_path, [("1-1-A-20.wav", 1, 20, "1")])
  csv_path = tmp_path / "meta" / "esc50.csv"
  with pytest.raises(JaxnoiseError, match=r"missing from .*1-1-A-20\.wav"):
    esc50.load_metadata(tmp_path)
  csv_path.write_text(csv_path.read_text().replace("crying_baby", "dog"))
  with pytest.raises(JaxnoiseError, match=r"esc50\.csv:2: category 'dog' does not match target 20"):
    esc50.load_metadata(tmp_path, check_files=False)
  csv_path.write_text("filename,fold\nx.wav,1\n")
  with pytest.raises(JaxnoiseError, match="lacks the column"):
    esc50.load_metadata(tmp_path)
  with pytest.raises(JaxnoiseError, match="meta/esc50.csv does not exist"):
    esc50.load_metadata(tmp_path / "nowhere")


# --- Finding / downloading ----------------------------------------------------------------------


def test_find_dataset_local_root_and_clear_errors(tmp_path, esc50_dir):
  assert esc50.find_dataset(str(esc50_dir), str(tmp_path)) == esc50_dir
  with pytest.raises(JaxnoiseError, match="does not hold ESC-50"):
    esc50.find_dataset(str(tmp_path / "missing"), str(tmp_path))
  with pytest.raises(JaxnoiseError, match=f"put ESC-50 .* in {tmp_path / 'esc50'}"):
    esc50.find_dataset("", str(tmp_path), download=False)


def test_offline_download_says_where_to_put_the_data(tmp_path):
  def offline(url, destination):
    raise urllib.error.URLError("Temporary failure in name resolution")

  with pytest.raises(JaxnoiseError, match=f"offline.*{tmp_path / 'esc50'}"):
    esc50.find_dataset("", str(tmp_path), fetch=offline)
  assert not (tmp_path / "esc50").exists()


def fake_archive(per_class: int, clip_samples: int) -> bytes:
  """A zip laid out as the official archive, with ``per_class`` silent clips per class."""
  silence = io.BytesIO()
  soundfile.write(silence, np.zeros(clip_samples, np.int16), esc50.SAMPLE_RATE, format="WAV",
                  subtype="PCM_16")
  rows = ["filename,fold,target,category,esc10,src_file,take"]
  bundle = io.BytesIO()
  with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as archive:
    for target, name in enumerate(esc50.CLASS_NAMES):
      for index in range(per_class):
        fold = index % 5 + 1
        filename = f"{fold}-{target}{index:03d}-A-{target}.wav"
        rows.append(f"{filename},{fold},{target},{name},False,{target}{index:03d},A")
        archive.writestr(f"{esc50.ARCHIVE_TOP_DIR}/audio/{filename}", silence.getvalue())
    archive.writestr(f"{esc50.ARCHIVE_TOP_DIR}/meta/esc50.csv", "\n".join(rows) + "\n")
  return bundle.getvalue()


def test_download_is_verified_then_extracted_once(tmp_path, monkeypatch):
  # A complete but small ESC-50: 5 clips per class instead of 40, 1000 samples instead of 220500.
  monkeypatch.setattr(esc50, "CLIPS_PER_CLASS", 5)
  monkeypatch.setattr(esc50, "CLIP_SAMPLES", 1000)
  payload = fake_archive(5, 1000)
  calls = []

  def fetch(url, destination):
    calls.append(url)
    pathlib.Path(destination).write_bytes(payload)

  root = esc50.find_dataset("", str(tmp_path), fetch=fetch)
  assert root == tmp_path / "esc50" and calls == [esc50.ARCHIVE_URL]
  assert len(esc50.load_metadata(root)) == 250
  assert esc50.find_dataset("", str(tmp_path), fetch=fetch) == root and len(calls) == 1
  assert [p.name for p in tmp_path.iterdir()] == ["esc50"]  # no staging left behind


def test_bad_download_leaves_nothing(tmp_path, monkeypatch):
  monkeypatch.setattr(esc50, "CLIPS_PER_CLASS", 5)
  monkeypatch.setattr(esc50, "CLIP_SAMPLES", 1000)
  short_clips = fake_archive(5, 999)
  with pytest.raises(JaxnoiseError, match="999 frames; expected 44100 Hz mono 1000"):
    esc50.find_dataset("", str(tmp_path),
                       fetch=lambda url, path: pathlib.Path(path).write_bytes(short_clips))
  with pytest.raises(JaxnoiseError, match="not a zip archive"):
    esc50.find_dataset("", str(tmp_path),
                       fetch=lambda url, path: pathlib.Path(path).write_bytes(b"<html>"))
  assert list(tmp_path.iterdir()) == []


# --- Clips --------------------------------------------------------------------------------------


def load_records(records, root, sample_rate, clip_samples, cache_dir, convert=True):
  """The ESC-50 ``records`` under ``root`` as one ``[clips, clip_samples]`` array."""
  paths = [esc50.audio_path(root, record) for record in records]
  return np.stack(clips.load_clips(paths, sample_rate, clip_samples, cache_dir, convert))


@pytest.fixture(scope="module")
def three_records(esc50_dir):
  records = esc50.load_metadata(esc50_dir)
  return [r for r in records if r.fold != 4]  # the 5 clips outside fold 4, small and varied


def test_clips_at_native_rate_are_the_pcm_samples(three_records, esc50_dir, tmp_path):
  loaded = load_records(three_records, esc50_dir, 44100, 220500, tmp_path)
  assert loaded.shape == (5, 220500) and loaded.dtype == np.float32
  for record, clip in zip(three_records, loaded):
    pcm, rate = soundfile.read(esc50.audio_path(esc50_dir, record), dtype="int16")
    assert rate == 44100
    np.testing.assert_array_equal(clip, pcm.astype(np.float32) / 32768)


def test_resampled_clips_match_librosa_and_are_cached(three_records, esc50_dir, tmp_path,
                                                      monkeypatch):
  loaded = load_records(three_records[:2], esc50_dir, 32000, 160000, tmp_path)
  reference, _ = librosa.load(esc50.audio_path(esc50_dir, three_records[0]), sr=32000)
  np.testing.assert_allclose(loaded[0], reference[:160000], rtol=0, atol=1e-6)
  cached = sorted((tmp_path / clips.CACHE_SUBDIR).iterdir())
  assert len(cached) == 2 and all("-32000hz-160000-" in p.name for p in cached)

  def no_decoding(*args, **kwargs):
    raise AssertionError("decoded although cached")

  monkeypatch.setattr(audio_io, "load_audio", no_decoding)
  np.testing.assert_array_equal(
      load_records(three_records[:2], esc50_dir, 32000, 160000, tmp_path), loaded)
  with pytest.raises(AssertionError, match="decoded although cached"):  # another rate: new key
    load_records(three_records[:1], esc50_dir, 16000, 80000, tmp_path)


def odd_dataset(root):
  """One clip of each kind the loader must reject or convert."""
  rate, seconds = esc50.SAMPLE_RATE, esc50.CLIP_SECONDS
  t = np.arange(int(rate * seconds)) / rate
  tone = 0.25 * np.sin(2 * np.pi * 440 * t)
  rows = [("1-1-A-20.wav", 1, 20, "1"), ("1-2-A-20.wav", 1, 20, "2"), ("1-3-A-20.wav", 1, 20, "3"),
          ("1-4-A-20.wav", 1, 20, "4"), ("1-5-A-20.wav", 1, 20, "5"), ("1-6-A-20.wav", 1, 20, "6")]
  write_metadata(root, rows)
  audio = root / "audio"
  soundfile.write(audio / "1-1-A-20.wav", np.stack([tone, -tone / 2], axis=1), rate)  # stereo
  soundfile.write(audio / "1-2-A-20.wav", tone[::2], rate // 2)                      # 22.05 kHz
  soundfile.write(audio / "1-3-A-20.wav", tone[:rate * 3], rate)                     # 3 s
  (audio / "1-4-A-20.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")              # corrupt
  (audio / "1-5-A-20.wav").write_text("filename,fold\n")                             # not audio
  soundfile.write(audio / "1-6-A-20.wav", tone, rate)                                # conforming
  return esc50.load_metadata(root), tone.astype(np.float32)


def test_nonconforming_clips_are_rejected_without_convert(tmp_path):
  records, _ = odd_dataset(tmp_path)
  messages = {"1-1": "2 channels, expected mono", "1-2": "22050 Hz, expected 44100 Hz",
              "1-3": r"132300 samples \(3.000 s\), expected 220500", "1-4": "cannot read",
              "1-5": "cannot read"}
  for record in records[:5]:
    with pytest.raises(AudioError, match=messages[record.filename[:3]]) as caught:
      load_records([record], tmp_path, 44100, 220500, None, convert=False)
    assert record.filename in str(caught.value)
  assert "convert_audio=True" in _message(records[0], tmp_path)
  load_records(records[5:], tmp_path, 44100, 220500, None, convert=False)


def _message(record, root):
  try:
    load_records([record], root, 44100, 220500, None, convert=False)
  except AudioError as error:
    return str(error)
  raise AssertionError("no error")


def test_nonconforming_clips_are_converted(tmp_path):
  records, tone = odd_dataset(tmp_path)
  stereo, slow, short = load_records(records[:3], tmp_path, 44100, 220500, tmp_path / "c")
  quantised = np.round(tone * 32767) / 32767  # the files hold 16-bit PCM
  np.testing.assert_allclose(stereo, quantised * 0.25, atol=1e-4)  # mean of +tone and -tone/2
  np.testing.assert_array_equal(short[132300:], 0)
  np.testing.assert_allclose(short[:132300], tone[:132300], atol=1e-4)
  # 22.05 kHz upsampled: the 440 Hz tone survives, away from the resampler's edge effects.
  np.testing.assert_allclose(slow[1000:-1000], tone[1000:-1000], atol=2e-3)
  for record in records[3:5]:
    with pytest.raises(AudioError, match=record.filename):
      load_records([record], tmp_path, 44100, 220500, None, convert=True)


# --- TFDS ---------------------------------------------------------------------------------------


def test_tfds_builder_has_folds_as_splits(esc50_dir, tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets", reason="the optional 'tfds' extra is absent")
  pytest.importorskip("array_record", reason="TFDS without TensorFlow reads ArrayRecord files")
  from jaxnoise.data import tfds_esc50  # pylint: disable=import-outside-toplevel

  builder = tfds.builder("esc50", data_dir=str(tmp_path), file_format="array_record")
  assert isinstance(builder, tfds_esc50.Esc50)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(esc50_dir)))
  splits = {name: info.num_examples for name, info in builder.info.splits.items()}
  assert splits == {f"fold{f}": n for f, n in SHARED_FOLD_COUNTS.items()}
  fold2 = builder.as_data_source(split="fold2")
  by_name = {fold2[i]["filename"].decode(): fold2[i] for i in range(len(fold2))}
  example = by_name["2-104168-A-32.wav"]
  pcm, _ = soundfile.read(esc50_dir / "audio" / "2-104168-A-32.wav", dtype="int16")
  np.testing.assert_array_equal(example["audio"], pcm)
  assert (example["label"], example["fold"]) == (32, 2)
  assert builder.info.features["label"].names[32] == "keyboard_typing"


def test_tfds_load_with_tensorflow(esc50_dir, tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets", reason="the optional 'tfds' extra is absent")
  pytest.importorskip("tensorflow", reason="tfds.load returns tf.data pipelines: needs TensorFlow")
  from jaxnoise.data import tfds_esc50  # pylint: disable=import-outside-toplevel,unused-import

  fold2 = tfds.load("esc50", split="fold2", data_dir=str(tmp_path), as_supervised=True,
                    download_and_prepare_kwargs={"download_config": tfds.download.DownloadConfig(
                        manual_dir=str(esc50_dir))})
  assert sorted(int(label) for _, label in fold2) == [32, 37, 37]
  assert all(tuple(audio.shape) == (esc50.CLIP_SAMPLES,) for audio, _ in fold2)
