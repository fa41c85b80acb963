"""`python -m jaxnoise.noise mix|report`: noisy copies with the target SNR, the noise report."""
import csv
import re
import subprocess
import sys

import jax
import matplotlib.image
import numpy as np
import pytest
import soundfile

from jaxnoise.audio.io import load_audio
from jaxnoise.cli import run_main
from jaxnoise.errors import ConfigError
from jaxnoise.noise import COLORS, noise_by_name
from jaxnoise.noise.__main__ import main, mix_files, output_name
from test_noise import scipy_band_power

BAND = (50.0, 7000.0)
SNRS = (10.0, -5.0)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
  """A folder with a 16 kHz int16 clip, a 22.05 kHz stereo float clip in a sub-folder, a silent
  clip, and a recorded noise (8 kHz, shorter than the clips, so it is resampled and looped)."""
  root = tmp_path_factory.mktemp("inputs")
  rng = np.random.default_rng(0)
  time = np.arange(16000) / 16000
  tone = 0.3 * np.sin(2 * np.pi * 440 * time) + 0.05 * rng.normal(size=16000)
  (root / "clips" / "sub").mkdir(parents=True)
  soundfile.write(root / "clips" / "tone.wav", tone, 16000, subtype="PCM_16")
  soundfile.write(root / "clips" / "sub" / "stereo.wav",
                  rng.uniform(-0.4, 0.4, (11025, 2)).astype(np.float32), 22050, subtype="FLOAT")
  soundfile.write(root / "clips" / "silent.wav", np.zeros(8000), 16000, subtype="PCM_16")
  soundfile.write(root / "hum.ogg", 0.2 * np.sin(2 * np.pi * 120 * np.arange(4000) / 8000)
                  + 0.01 * rng.normal(size=4000), 8000)
  return root


@pytest.fixture(scope="module")
def mixed(inputs, tmp_path_factory):
  out = tmp_path_factory.mktemp("noisy")
  argv = ["mix", "--noise", "pink", "--noise", str(inputs / "hum.ogg"), "--band", *map(str, BAND),
          "--seed", "4", "--out", str(out), str(inputs / "clips")]
  for snr in SNRS:
    argv += ["--snr", str(snr)]
  return out, run_main(main, argv)


def test_mix_writes_float_wavs_named_by_noise_and_snr(mixed):
  out, code = mixed
  assert code == 0
  written = sorted(path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file())
  expected = sorted(f"{folder}{output_name(stem, noise, snr)}"
                    for folder, stem in [("", "tone"), ("", "silent"), ("sub/", "stereo")]
                    for noise in ("pink", "hum") for snr in SNRS)
  assert written == expected  # and no temporary file is left behind
  assert "tone__pink__snr+10dB.wav" in written and "sub/stereo__hum__snr-5dB.wav" in written
  info = soundfile.info(out / "sub" / "stereo__pink__snr+10dB.wav")
  assert (info.samplerate, info.frames, info.channels, info.subtype) == (22050, 11025, 1, "FLOAT")


@pytest.mark.parametrize("folder, stem, rate", [("", "tone", 16000), ("sub", "stereo", 22050)])
def test_every_output_has_the_target_inband_snr(inputs, mixed, folder, stem, rate):
  out, _ = mixed
  clip, clip_rate = load_audio(next((inputs / "clips").rglob(f"{stem}.wav")))
  assert clip_rate == rate
  clip_power = scipy_band_power(clip, rate, BAND)
  for noise in ("pink", "hum"):
    for snr in SNRS:
      noisy, noisy_rate = soundfile.read(out / folder / output_name(stem, noise, snr),
                                         dtype="float64")
      assert noisy_rate == rate
      added = noisy - clip.astype(np.float64)
      realised = 10 * np.log10(clip_power / scipy_band_power(added, rate, BAND))
      assert abs(realised - snr) < 0.01, (stem, noise, snr, realised)


def test_mix_uses_the_seeded_noise_at_the_input_rate_and_length(inputs, mixed):
  out, _ = mixed
  clip, _ = load_audio(inputs / "clips" / "tone.wav")
  noisy, _ = soundfile.read(out / output_name("tone", "pink", 10.0), dtype="float32")
  pink = np.asarray(noise_by_name("pink", jax.random.key(4), 16000, 16000))
  added = noisy - clip
  gain = np.dot(added, pink) / np.dot(pink, pink)
  np.testing.assert_allclose(added, gain * pink, atol=1e-6)


def test_silent_input_is_copied_and_warned_about(inputs, tmp_path, capsys):
  code = run_main(main, ["mix", "--noise", "white", "--snr", "0", "--band", "50", "7000",
                         "--out", str(tmp_path), str(inputs / "clips" / "silent.wav")])
  assert code == 0
  assert "warning" in capsys.readouterr().err
  noisy, _ = soundfile.read(tmp_path / output_name("silent", "white", 0.0))
  np.testing.assert_array_equal(noisy, 0.0)


@pytest.mark.parametrize("argv, message", [
    (["--noise", "pink", "--snr", "0", "--band", "50", "11025"], "Nyquist frequency 8000"),
    (["--noise", "pinkk", "--snr", "0"], "'pinkk'.*" + ", ".join(COLORS)),
    (["--noise", "pink", "--snr", "0", "--band", "300", "200"], "fmin < fmax"),
    (["--noise", "pink", "--snr", "3", "--snr", "3", "--band", "50", "7000"], "given twice"),
])
def test_mix_rejects_bad_arguments_clearly(inputs, tmp_path, capsys, argv, message):
  code = run_main(main, ["mix", *argv, "--out", str(tmp_path), str(inputs / "clips" / "tone.wav")])
  assert code == 2
  assert re.search(message, capsys.readouterr().err)
  assert not list(tmp_path.iterdir())


def test_snr_list_must_not_be_empty(inputs, tmp_path):
  with pytest.raises(ConfigError, match="at least one"):
    mix_files([inputs / "clips"], ["pink"], [], BAND, tmp_path)
  with pytest.raises(SystemExit):  # argparse: --snr is required
    main(["mix", "--noise", "pink", "--out", str(tmp_path), str(inputs / "clips")])


def test_module_entry_point_reports_errors_without_traceback(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "jaxnoise.noise", "mix", "--noise", "purple", "--snr", "0",
       "--out", str(tmp_path), str(tmp_path)], capture_output=True, text=True, check=False)
  assert result.returncode == 2
  assert result.stderr.startswith("error: unknown noise 'purple'")
  assert "Traceback" not in result.stderr


def test_report_csv_is_scipy_band_power_of_the_same_realisations(inputs, tmp_path, capsys):
  argv = ["report", "--sample-rate", "16000", "--band", "50", "7000", "--band", "0", "8000",
          "--seconds", "0.75", "--seed", "3", "--noise-file", str(inputs / "hum.ogg"),
          "--out", str(tmp_path)]
  assert run_main(main, argv) == 0
  with open(tmp_path / "noise_power.csv", newline="", encoding="utf-8") as stream:
    rows = list(csv.DictReader(stream))
  assert [row["noise"] for row in rows] == [*COLORS, "hum"] * 2
  for row in rows:
    name = row["noise"] if row["noise"] in COLORS else str(inputs / "hum.ogg")
    realisation = noise_by_name(name, jax.random.key(3), 12000, 16000)
    band = (float(row["fmin"]), float(row["fmax"]))
    expected = scipy_band_power(realisation, 16000, band)
    assert abs(float(row["band_power"]) / expected - 1) < 1e-5, row
    assert abs(float(row["band_power_db"]) - 10 * np.log10(expected)) < 1e-4
    assert int(row["num_samples"]) == 12000
  assert {row["ind_max"] for row in rows if row["fmax"] == "8000.0"} == {"-1"}  # Nyquist quirk
  image = matplotlib.image.imread(tmp_path / "noise_psd.png")
  assert image.ndim == 3 and image.shape[0] > 100
  assert sorted(path.name for path in tmp_path.iterdir()) == ["noise_power.csv", "noise_psd.png"]


def test_generator_flag_shapes_report_and_mix_with_the_study_routine(inputs, tmp_path):
  # --generator study: the report's brown row is scipy's band power of colored_noise(..., 'study'),
  # and mix inserts that same realisation.
  argv = ["report", "--sample-rate", "16000", "--band", "50", "7000", "--seconds", "0.75",
          "--seed", "3", "--generator", "study", "--out", str(tmp_path / "report")]
  assert run_main(main, argv) == 0
  with open(tmp_path / "report" / "noise_power.csv", newline="", encoding="utf-8") as stream:
    rows = {row["noise"]: row for row in csv.DictReader(stream)}
  study = noise_by_name("brown", jax.random.key(3), 12000, 16000, "study")
  psd = noise_by_name("brown", jax.random.key(3), 12000, 16000)
  expected = scipy_band_power(study, 16000, (50, 7000))
  assert abs(float(rows["brown"]["band_power"]) / expected - 1) < 1e-5
  assert abs(expected / scipy_band_power(psd, 16000, (50, 7000)) - 1) > 0.1
  assert rows["brown"]["source"] == "color (study)"
  clip = inputs / "clips" / "tone.wav"
  argv = ["mix", "--noise", "brown", "--snr", "0", "--seed", "3", "--generator", "study",
          "--band", *map(str, BAND), "--out", str(tmp_path / "mixed"), str(clip)]
  assert run_main(main, argv) == 0
  clean, rate = load_audio(clip)
  noisy, _ = load_audio(next((tmp_path / "mixed").rglob("*.wav")))
  inserted = noisy - clean
  expected_noise = np.asarray(noise_by_name("brown", jax.random.key(3), clean.size, rate, "study"))
  gain = np.dot(inserted, expected_noise) / np.dot(expected_noise, expected_noise)
  np.testing.assert_allclose(inserted, gain * expected_noise, atol=1e-5)
