"""``python -m jaxnoise.predict`` with the real EfficientAT mn04_as on the golden clips.

The top-5 AudioSet names must be upstream's (../shared/golden/mn/README.md) for every clip, and the
``--json`` scores upstream's sigmoid outputs, from the audio files through our loader and frontend.
"""
import json
import subprocess
import sys

import jax
import numpy as np
import pytest
import soundfile

from jaxnoise import cli, convert, predict
from jaxnoise.audio import io as audio_io
from jaxnoise.models import registry, store

pytest.importorskip("torch", reason="converting the golden checkpoint needs the 'convert' extra")

# From the file, the loader's resampling and our frontend add float32 error to the network's
# (the same bound as test_convert_mobilenet's end-to-end check).
SCORES_ATOL = 3e-5


@pytest.fixture(scope="module")
def golden(golden_dir):
  mn_dir = golden_dir / "mn"
  return (dict(np.load(mn_dir / "mn04_as.io.npz")),
          json.loads((mn_dir / "mn04_as.manifest.json").read_text())["top5_audioset_labels"])


@pytest.fixture(scope="module")
def model_dir(golden_dir, tmp_path_factory):
  out = tmp_path_factory.mktemp("models") / "mn04_as"
  return convert.convert_to_directory("mn", golden_dir / "mn" / "mn04_as_mAP_432.pt", out)


@pytest.fixture(scope="module")
def clips(shared_dir, golden, tmp_path_factory):
  """Clip name -> audio file. typing.wav and the ESC-50 dog clip are not in ../shared/data, so
  they are written from the golden 32 kHz waveforms as float WAV (read back bit for bit)."""
  arrays, _ = golden
  names = list(arrays["clip_names"])
  folder = tmp_path_factory.mktemp("clips")
  files = {
      "speech.wav": shared_dir / "data" / "noise" / "swch-audio-classification" / "speech.wav",
      "music.wav": shared_dir / "data" / "noise" / "swch-audio-classification" / "music.wav",
      "4-158653-A-32.wav": shared_dir / "data" / "esc50" / "audio" / "4-158653-A-32.wav",
  }
  for name in ("typing.wav", "4-182395-A-0.wav"):
    files[name] = folder / name
    soundfile.write(files[name], arrays["waveform"][names.index(name)], 32000, subtype="FLOAT")
  return {name: files[name] for name in names}


def run(argv, capsys):
  code = cli.run_main(predict.main, argv)
  captured = capsys.readouterr()
  return code, captured.out, captured.err


def test_top5_names_of_every_clip(model_dir, clips, golden, capsys):
  _, expected = golden
  # The golden outputs are of each file's first 5 s (speech.wav and music.wav last 10 s).
  code, out, _ = run(["--checkpoint", str(model_dir), "--first-clip",
                      *map(str, clips.values())], capsys)
  assert code == 0
  lines = out.splitlines()
  assert len(lines) == 6 * len(clips)
  for position, name in enumerate(clips):
    block = lines[6 * position:6 * position + 6]
    assert block[0] == str(clips[name])
    scores, labels = zip(*(line.strip().split("  ", 1) for line in block[1:]))
    assert list(labels) == expected[name]["labels"], name
    np.testing.assert_allclose(np.array(scores, float), expected[name]["probs"], atol=6e-4)


def test_json_lines_hold_every_score(model_dir, clips, golden, capsys):
  arrays, expected = golden
  code, out, _ = run(["--checkpoint", str(model_dir), "--first-clip", "--json",
                      *map(str, clips.values())], capsys)
  assert code == 0
  records = [json.loads(line) for line in out.splitlines()]
  assert [record["file"] for record in records] == list(map(str, clips.values()))
  for index, (name, record) in enumerate(zip(clips, records)):
    assert len(record["scores"]) == 527 and record["output_activation"] == "sigmoid"
    np.testing.assert_allclose(record["scores"], arrays["clipwise_sigmoid"][index],
                               atol=SCORES_ATOL)
    assert record["top_indices"] == arrays["top5_audioset_indices"][index].tolist()
    assert record["top_labels"] == expected[name]["labels"]
    assert record["top_scores"] == [record["scores"][i] for i in record["top_indices"]]


def test_clear_errors(model_dir, tmp_path, capsys):
  not_audio = tmp_path / "notes.wav"
  not_audio.write_text("not audio")
  cases = [
      (["--checkpoint", str(model_dir), str(tmp_path / "missing.wav")],
       "missing.wav does not exist"),
      (["--checkpoint", str(model_dir), str(not_audio)], "cannot read"),
      (["--checkpoint", str(tmp_path), str(not_audio)], "is not a jaxnoise model directory"),
      (["--checkpoint", str(model_dir), "--top-k", "0", str(not_audio)], "--top-k must be"),
  ]
  for argv, message in cases:
    code, out, err = run(argv, capsys)
    assert code == 2 and out == "", argv
    assert err.startswith("error: ") and message in err, err


def test_module_entry_point(tmp_path):
  result = subprocess.run([sys.executable, "-m", "jaxnoise.predict", "--checkpoint",
                           str(tmp_path), str(tmp_path / "clip.wav")],
                          capture_output=True, text=True, check=False)
  assert result.returncode == 2
  assert result.stderr == f"error: {tmp_path / 'clip.wav'} does not exist\n"


def test_top_k_orders_ties_by_index():
  scores = np.array([[0.1, 0.5, 0.5, 0.9]])
  assert predict.top_k(scores, 3).tolist() == [[3, 1, 2]]


def test_any_family_from_its_config(tmp_path, clips, capsys):
  """A CNN10 directory (44.1 kHz, softmax head, its own labels) goes through the same code path.

  All-zero variables make every logit 0, so every score is 1/3 and ties rank by class index.
  """
  spec = registry.build_spec("cnn10", {"num_classes": 3, "labels": ["dog", "rain", "wind"]})
  shapes = jax.eval_shape(spec.init, jax.random.key(0))
  model = store.save_model(tmp_path / "cnn10", spec,
                           jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), shapes))
  code, out, _ = run(["--checkpoint", str(model), "--json", "--top-k", "9",
                      str(clips["music.wav"])], capsys)
  assert code == 0
  record = json.loads(out)
  assert record["output_activation"] == "softmax"
  assert record["top_labels"] == ["dog", "rain", "wind"] and record["top_indices"] == [0, 1, 2]
  np.testing.assert_allclose(record["scores"], [1 / 3] * 3, rtol=1e-6)


def test_whole_files_by_default_short_ones_padded(model_dir, clips, golden, tmp_path, capsys):
  """Without --first-clip a 10-s file is classified whole and a 2-s file as if zero-padded to 5 s."""
  arrays, _ = golden
  spec, variables = store.load_model(model_dir)
  names = list(arrays["clip_names"])
  short = tmp_path / "short.wav"
  soundfile.write(short, arrays["waveform"][names.index("typing.wav")][:64000], 32000,
                  subtype="FLOAT")
  code, out, _ = run(["--checkpoint", str(model_dir), "--json", str(clips["music.wav"]),
                      str(short)], capsys)
  assert code == 0
  whole, short_record = (json.loads(line) for line in out.splitlines())
  music, _ = audio_io.load_audio(clips["music.wav"], 32000)
  assert music.shape == (320000,)
  expected_whole = spec.scores(spec.apply(variables, music[None])["logits"])[0]
  np.testing.assert_allclose(whole["scores"], expected_whole, atol=1e-5)
  # ... which is not what its first 5 s give: the option changes the input, not just the name.
  assert np.max(np.abs(np.array(whole["scores"]) - arrays["clipwise_sigmoid"][names.index(
      "music.wav")])) > 1e-3
  padded = np.pad(arrays["waveform"][names.index("typing.wav")][:64000], (0, 96000))
  expected_short = spec.scores(spec.apply(variables, padded[None])["logits"])[0]
  np.testing.assert_allclose(short_record["scores"], expected_short, atol=1e-5)


def test_htsat_long_files_use_windows_and_short_files_repeat(golden_dir, tmp_path, capsys):
  """HTS-AT: a 12-s file is scored whole (averaged 10-s windows), a 2-s file is repeated, not
  zero-padded, before the frontend (upstream's handling; upstream itself crashes above 10.24 s)."""
  model = convert.convert_to_directory("htsat", golden_dir / "htsat" / "htsat_tiny_esc19.ckpt",
                                       tmp_path / "htsat")
  spec, variables = store.load_model(model)
  assert not spec.pad_short_clips
  waveform = np.load(golden_dir / "htsat" / "htsat_tiny_esc19.io.npz")["waveform"][0]
  long_clip = np.concatenate([waveform, waveform[:64000]])  # 12 s
  short_clip = waveform[:64000]  # 2 s
  files = []
  for name, clip in (("long.wav", long_clip), ("short.wav", short_clip)):
    files.append(tmp_path / name)
    soundfile.write(files[-1], clip, 32000, subtype="FLOAT")
  code, out, _ = run(["--checkpoint", str(model), "--json", *map(str, files)], capsys)
  assert code == 0
  long_record, short_record = (json.loads(line) for line in out.splitlines())
  for record, clip in ((long_record, long_clip), (short_record, short_clip)):
    expected = spec.scores(spec.apply(variables, clip[None])["logits"])[0]
    np.testing.assert_allclose(record["scores"], expected, atol=1e-5)
  zero_padded = np.pad(short_clip, (0, spec.clip_samples - short_clip.size))
  padded_scores = spec.scores(spec.apply(variables, zero_padded[None])["logits"])[0]
  assert np.max(np.abs(np.array(short_record["scores"]) - padded_scores)) > 1e-4
