"""Colored and recorded noise, the study's band power, gains and mixing (jaxnoise.noise)."""
import jax
import numpy as np
import pytest
import scipy.integrate
import scipy.signal
import soundfile

from jaxnoise import noise
from jaxnoise.audio.io import load_audio
from jaxnoise.errors import ConfigError

GOLDEN_BANDS = {  # tag: (sample rate, band)
    "44100_50_11025": (44100, (50, 11025)),
    "32000_0_15000": (32000, (0, 15000)),
    "32000_50_14000": (32000, (50, 14000)),
}


def scipy_band_power(waveform, sample_rate, band):
  """The study's formula verbatim, float64 (the reference every JAX number is checked against)."""
  frequencies, density = scipy.signal.periodogram(np.asarray(waveform, np.float64), sample_rate)
  ind_min = np.argmax(frequencies > band[0]) - 1
  ind_max = np.argmax(frequencies > band[1]) - 1
  return scipy.integrate.trapezoid(density[..., ind_min:ind_max], frequencies[ind_min:ind_max])


def relative_error(actual, expected):
  return np.max(np.abs(np.asarray(actual, np.float64) / expected - 1))


@pytest.fixture(scope="module")
def golden(golden_dir):
  insertion = np.load(golden_dir / "frontends" / "noise_insertion.npz")
  clips = np.load(golden_dir / "frontends" / "io.npz")
  signals = {44100: (clips["wav44_int16"] / 32768).astype(np.float32), 32000: clips["wav32"]}
  noises = {rate: np.stack([insertion[f"noise_{name}_{rate}"] for name in ("white", "pink")])
            for rate in (44100, 32000)}
  return insertion, signals, noises


# --- colored noise -------------------------------------------------------------------------------

@pytest.mark.parametrize("generator", noise.GENERATORS)
@pytest.mark.parametrize("color, slope_db_per_decade",
                         [("white", 0), ("pink", -10), ("brown", -20), ("blue", 10),
                          ("violet", 20)])
def test_psd_slope_matches_color(color, slope_db_per_decade, generator):
  sample_rate = 44100
  keys = jax.random.split(jax.random.key(7), 4)
  realisations = np.asarray(noise.colored_noise_batch(keys, 2 ** 18, color, generator=generator),
                            np.float64)
  frequencies, density = scipy.signal.welch(realisations, fs=sample_rate, nperseg=4096)
  density = density.mean(axis=0)
  mid_band = (frequencies >= 100) & (frequencies <= 10000)
  slope, _ = np.polyfit(np.log10(frequencies[mid_band]), 10 * np.log10(density[mid_band]), 1)
  assert abs(slope - slope_db_per_decade) < 1.0, (color, slope)


@pytest.mark.parametrize("num_samples", [2, 1009, 16000])
def test_colored_noise_is_zero_mean_unit_variance_float32(num_samples):
  for color in noise.COLORS:
    realisation = noise.colored_noise(jax.random.key(1), num_samples, color)
    assert realisation.shape == (num_samples,) and realisation.dtype == np.float32
    values = np.asarray(realisation, np.float64)
    assert np.all(np.isfinite(values))
    np.testing.assert_allclose([values.mean(), values.std()], [0.0, 1.0], atol=1e-5)


def test_colored_noise_spectrum_is_the_shaped_white_draw():
  # Same key, same white draw: the pink spectrum is the white one times 1/sqrt(k) (closed form).
  num_samples = 4000
  white = np.fft.rfft(np.asarray(noise.colored_noise(jax.random.key(3), num_samples, "white"),
                                 np.float64))
  pink = np.fft.rfft(np.asarray(noise.colored_noise(jax.random.key(3), num_samples, "pink"),
                                np.float64))
  ratio = np.abs(pink[1:]) / np.abs(white[1:])
  expected = np.arange(1, num_samples // 2 + 1) ** -0.5
  np.testing.assert_allclose(ratio / ratio[0], expected, rtol=1e-3)
  assert abs(pink[0]) < 1e-3


def test_colored_noise_batch_is_a_loop_over_keys():
  keys = jax.random.split(jax.random.key(0), 3)
  batch = noise.colored_noise_batch(keys, 1000, "brown")
  loop = np.stack([noise.colored_noise(key, 1000, "brown") for key in keys])
  np.testing.assert_allclose(batch, loop, rtol=1e-5, atol=1e-6)
  assert not np.allclose(batch[0], batch[1])


def zhivomirov_transcription(white, exponent):
  """The study's MATLAB routine (File Exchange 42919) step by step in float64 numpy."""
  num_samples = white.size
  spectrum = np.fft.fft(white)
  unique = num_samples // 2 + 1  # N/2 + 1 for even N, (N + 1)/2 for odd
  index = np.arange(1, unique + 1)  # MATLAB's k = 1:NumUniquePts, DC is bin 1
  left = spectrum[:unique] * index ** (exponent / 2)
  # X = [X conj(X(end-1:-1:2))] for even N, [X conj(X(end:-1:2))] for odd N.
  right = np.conj(left[-2:0:-1] if num_samples % 2 == 0 else left[-1:0:-1])
  shaped = np.real(np.fft.ifft(np.concatenate([left, right])))
  shaped = shaped - shaped.mean()
  return shaped / shaped.std()


@pytest.mark.parametrize("num_samples", [4000, 4001])
@pytest.mark.parametrize("color", noise.COLORS)
def test_study_generator_equals_the_matlab_transcription(color, num_samples):
  key = jax.random.key(5)
  white = np.asarray(jax.random.normal(key, (num_samples,), np.float32), np.float64)
  expected = zhivomirov_transcription(white, noise.COLOR_EXPONENTS[color])
  actual = np.asarray(noise.colored_noise(key, num_samples, color, generator="study"), np.float64)
  # float32 FFTs of unit-variance noise: measured max error 1.6e-6 (violet, 4001), a few ulps.
  np.testing.assert_allclose(actual, expected, rtol=0, atol=2.5e-6)


def test_study_generator_moves_brown_power_into_the_band():
  # Closed form per bin: the study's gain over the psd gain is ((k + 1) / k) ** (exponent / 2), so
  # bin 1 of brown noise keeps a quarter of its psd power relative to the bins of the SNR band.
  gains = {g: noise.spectral_gains(8, -2.0, g) for g in noise.GENERATORS}
  np.testing.assert_allclose(gains["study"], 1 / np.arange(1, 6))
  np.testing.assert_allclose(gains["psd"], [0, 1, 1 / 2, 1 / 3, 1 / 4])
  powers = {g: float(noise.band_power(noise.colored_noise(jax.random.key(0), 220500, "brown",
                                                          generator=g), 44100, (50, 11025)))
            for g in noise.GENERATORS}
  assert powers["study"] > 2 * powers["psd"], powers


def test_unknown_color_and_short_noise_are_config_errors():
  with pytest.raises(ConfigError, match="generator 'matlab': expected one of psd, study"):
    noise.colored_noise(jax.random.key(0), 100, "pink", generator="matlab")
  with pytest.raises(ConfigError, match="white, pink, brown, blue, violet"):
    noise.colored_noise(jax.random.key(0), 100, "purple")
  with pytest.raises(ConfigError, match="at least 2 samples"):
    noise.colored_noise(jax.random.key(0), 1, "pink")


# --- recorded noise ------------------------------------------------------------------------------

def test_loop_or_cut_tiles_and_cuts():
  recording = np.arange(5, dtype=np.float32)
  np.testing.assert_array_equal(noise.loop_or_cut(recording, 12),
                                [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1])
  np.testing.assert_array_equal(noise.loop_or_cut(recording, 3), [0, 1, 2])


def test_recorded_noise_is_mono_resampled_and_looped(tmp_path):
  rate = 22050
  stereo = np.random.default_rng(0).uniform(-0.5, 0.5, (rate // 2, 2)).astype(np.float32)
  path = tmp_path / "hum.flac"
  soundfile.write(path, stereo, rate, subtype="PCM_24")
  reference, _ = load_audio(path, sample_rate=16000)  # mono mean, soxr HQ
  assert reference.shape == (8000,)
  looped = noise.load_noise_file(path, 16000, 20000)
  assert looped.shape == (20000,) and looped.dtype == np.float32
  np.testing.assert_array_equal(looped[:8000], reference)
  np.testing.assert_array_equal(looped[8000:16000], reference)
  np.testing.assert_array_equal(noise.load_noise_file(path, 16000, 3000), reference[:3000])
  by_name = noise.noise_by_name(str(path), jax.random.key(0), 3000, 16000)
  np.testing.assert_array_equal(by_name, reference[:3000])
  assert noise.noise_label(str(path)) == "hum"


def test_real_recording_resampled_to_model_rate(noise_dir):
  path = noise_dir / "whisp" / "wind.wav"
  loaded = noise.noise_by_name(str(path), jax.random.key(0), 32000 * 5, 32000)
  reference, _ = load_audio(path, sample_rate=32000)
  assert loaded.shape == (160000,)
  np.testing.assert_array_equal(loaded, noise.loop_or_cut(reference, 160000))


def test_noise_by_name_colors_and_unknown_names():
  pink = noise.noise_by_name("pink", jax.random.key(5), 3000, 44100)
  np.testing.assert_array_equal(pink, noise.colored_noise(jax.random.key(5), 3000, "pink"))
  with pytest.raises(ConfigError, match="'pinkish'.*white, pink, brown, blue, violet"):
    noise.noise_by_name("pinkish", jax.random.key(0), 3000, 44100)
  with pytest.raises(ConfigError, match="distinct names"):
    noise.noise_labels(["pink", "pink"])


# --- band power ----------------------------------------------------------------------------------

def test_band_indices_reproduce_the_study(golden):
  insertion, _, _ = golden
  facts = {"44100_50_11025": (250, 55125), "32000_0_15000": (0, 75000),
           "32000_50_14000": (250, 70000)}
  for tag, (rate, band) in GOLDEN_BANDS.items():
    assert noise.band_indices(5 * rate, rate, band) == facts[tag]
  assert noise.band_indices(160000, 32000, (0, 16000)) == (0, -1)  # fmax at Nyquist


@pytest.mark.parametrize("tag", list(GOLDEN_BANDS))
def test_band_power_and_gains_match_golden(golden, tag):
  insertion, signals, noises = golden
  rate, band = GOLDEN_BANDS[tag]
  clip_powers = noise.band_power(signals[rate], rate, band)
  noise_powers = noise.band_power(noises[rate], rate, band)
  assert clip_powers.dtype == np.float32 and clip_powers.shape == (4,)
  assert relative_error(clip_powers, insertion[f"P_x_{tag}"]) < 1e-5
  assert relative_error(noise_powers, insertion[f"P_n0_{tag}"]) < 1e-5
  result = noise.mix(signals[rate], noises[rate], insertion["snrs_db"], rate, band)
  assert result.noisy.shape == (4, 2, 5, 5 * rate)
  assert relative_error(result.gains, insertion[f"alpha_{tag}"]) < 1e-5


def test_band_power_quirks_dc_offset_and_nyquist(golden):
  insertion, signals, _ = golden
  quirks = __import__("json").loads(str(insertion["quirk_json"]))
  clip = signals[44100][1]
  expected = quirks["dc_offset"]["P_x_clip1_44k_50_11025"]
  assert relative_error(noise.band_power(clip + 0.25, 44100, (50, 11025)), expected) < 1e-5
  clip32 = signals[32000][1]
  # fmax at Nyquist: ind_max = -1 drops only the Nyquist bin, exactly as scipy's slice does.
  assert relative_error(noise.band_power(clip32, 32000, (0, 16000)),
                        scipy_band_power(clip32, 32000, (0, 16000))) < 1e-5


@pytest.mark.parametrize("num_samples, rate, band",
                         [(4999, 8000, (33.3, 2500.7)),   # odd length: no Nyquist bin
                          (5000, 8000, (0, 4000)),        # even length, fmax at Nyquist
                          (3001, 22050, (101.1, 11025))]) # fmax above the last bin
def test_band_power_equals_scipy_off_grid(num_samples, rate, band):
  signals = np.random.default_rng(num_samples).normal(0.1, 0.3, (3, num_samples))
  signals[1] = np.cumsum(signals[1]) / 30  # a red signal: most power at low frequencies
  expected = scipy_band_power(signals, rate, band)
  assert relative_error(noise.band_power(signals.astype(np.float32), rate, band), expected) < 1e-5


def test_band_power_is_batched_and_jittable(golden):
  _, signals, _ = golden
  clips = signals[32000][:2, :32000]
  batched = noise.band_power(clips, 32000, (50, 14000))
  jitted = jax.jit(lambda x: noise.band_power(x, 32000, (50, 14000)))(clips)
  single = [noise.band_power(clip, 32000, (50, 14000)) for clip in clips]
  np.testing.assert_allclose(batched, single, rtol=1e-6)
  np.testing.assert_allclose(jitted, batched, rtol=1e-6)


@pytest.mark.parametrize("band", [(100, 50), (-1, 50), (50, 50.1), "50-100"])
def test_bad_bands_are_config_errors(band):
  with pytest.raises(ConfigError, match="band"):
    noise.band_power(np.ones(1000, np.float32), 1000, band)


# --- mixing --------------------------------------------------------------------------------------

def test_every_mix_has_the_target_inband_snr(golden):
  insertion, signals, noises = golden
  rate, band = GOLDEN_BANDS["44100_50_11025"]
  clips = signals[rate][:2]
  brown = noise.colored_noise(jax.random.key(2), clips.shape[1], "brown")
  all_noises = np.concatenate([noises[rate], np.asarray(brown)[None]])
  snrs = np.array([-20.0, -7.5, 0.0, 10.0, 20.0], np.float32)
  result = noise.mix(clips, all_noises, snrs, rate, band)
  assert result.noisy.dtype == np.float32
  noisy = np.asarray(result.noisy, np.float64)
  clip_powers = scipy_band_power(clips, rate, band)
  for clip_index in range(2):
    for noise_index in range(3):
      added = noisy[clip_index, noise_index] - clips[clip_index].astype(np.float64)
      realised = 10 * np.log10(clip_powers[clip_index] / scipy_band_power(added, rate, band))
      np.testing.assert_allclose(realised, snrs, atol=0.01)


def test_mix_with_powers_equals_mix_and_the_formula(golden):
  _, signals, noises = golden
  clips, two_noises = signals[32000][:2, :16000], noises[32000][:, :16000]
  snrs = np.array([0.0, 10.0], np.float32)
  result = noise.mix(clips, two_noises, snrs, 32000, (50, 14000))
  chunked = noise.mix_with_powers(clips[1:], result.clip_powers[1:], two_noises,
                                  result.noise_powers, snrs)
  np.testing.assert_array_equal(chunked.noisy, result.noisy[1:])
  alpha = np.sqrt(np.asarray(result.clip_powers, np.float64)[:, None, None]
                  * 10 ** (-snrs / 10) / np.asarray(result.noise_powers, np.float64)[None, :, None])
  np.testing.assert_allclose(result.gains, alpha, rtol=1e-6)
  np.testing.assert_allclose(result.noisy, clips[:, None, None] + alpha[..., None]
                             * two_noises[None, :, None], rtol=1e-6, atol=1e-7)


def test_silent_clip_and_silent_noise_are_reported_not_nan():
  rng = np.random.default_rng(0)
  clips = np.stack([np.zeros(2000), rng.normal(size=2000)]).astype(np.float32)
  noises = np.stack([rng.normal(size=2000), np.full(2000, 0.5)]).astype(np.float32)  # DC only
  result = noise.mix(clips, noises, np.array([-10.0, 10.0]), 8000, (50, 3000))
  assert np.all(np.isfinite(result.noisy)) and np.all(np.isfinite(result.gains))
  np.testing.assert_array_equal(result.silent_clips, [True, False])
  np.testing.assert_array_equal(result.silent_noises, [False, True])
  np.testing.assert_array_equal(result.gains[0], 0.0)
  np.testing.assert_array_equal(result.gains[:, 1], 0.0)
  np.testing.assert_array_equal(result.noisy[0], 0.0)  # no noise inserted into a silent clip
  assert np.all(result.gains[1, 0] > 0)
