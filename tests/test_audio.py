"""Frontends and filterbanks against the upstream golden vectors (../shared/golden/frontends, mn)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnoise.audio import filterbanks, frontends
from jaxnoise.audio import io as audio_io


@pytest.fixture(scope="module")
def golden(golden_dir):
  return dict(np.load(golden_dir / "frontends" / "io.npz"))


@pytest.fixture(scope="module")
def wav44(golden):
  return golden["wav44_int16"] / 32768.0


def max_abs(a, b):
  return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def test_filterbanks_and_windows_equal_upstream(golden):
  assert max_abs(filterbanks.slaney_mel(44100, 1764, 40, 50, 11025), golden["tfnet_melW_883x40"]) == 0
  assert max_abs(filterbanks.slaney_mel(32000, 1024, 64, 50, 14000), golden["tl_melW_513x64"]) == 0
  assert max_abs(filterbanks.hann(1764, symmetric=True), golden["tfnet_window_np_hanning_1764"]) < 1e-15
  assert max_abs(filterbanks.hann(1024, symmetric=False), golden["tl_window_periodic_hann_1024"]) < 5e-8


def test_kaldi_bank_in_jax_equals_numpy_and_is_a_triangle_partition():
  bank = filterbanks.kaldi_mel(32000, 1024, 128, 0.0, 15000.0)
  bank_jax = filterbanks.kaldi_mel(32000, 1024, 128, jnp.float32(0.0), jnp.float32(15000.0), xp=jnp)
  assert bank.shape == (513, 128)
  assert max_abs(bank, bank_jax) < 5e-5
  assert np.all(bank[-1] == 0)  # the appended Nyquist row
  # Adjacent triangles cross at their shared edge, so inside the band the weights sum to 1.
  frequencies = np.arange(513) * 32000 / 1024
  inside = (frequencies > 300) & (frequencies < 14000)
  np.testing.assert_allclose(bank[inside].sum(axis=1), 1.0, atol=1e-4)


def test_frame_matches_explicit_indexing():
  signal = jnp.arange(2 * 5000, dtype=jnp.float32).reshape(2, 5000)
  framed = frontends.frame(signal, 1024, 320)
  frames = 1 + (5000 - 1024) // 320
  expected = np.stack([np.asarray(signal)[:, i * 320:i * 320 + 1024] for i in range(frames)], 1)
  np.testing.assert_array_equal(framed, expected)


def test_tfnet_logmel_matches_extractor(golden, wav44):
  logmel = np.asarray(frontends.tfnet_logmel(jnp.asarray(wav44, jnp.float32)))
  reference = golden["a_tfnet_logmel_44k"]
  assert logmel.shape == reference.shape == (4, 251, 40)
  error = np.abs(logmel - reference)
  # float32 FFT round-off: bins 70+ dB below their frame's peak reach 7e-4 dB; louder bins agree
  # far better and the mean error is ~2e-6 dB.
  assert error.max() < 1e-3
  assert error[reference > -60].max() < 2e-4
  assert error[reference > -40].max() < 5e-5
  assert error.mean() < 1e-5


def test_tfnet_input_matches_normalised_model_input(golden, wav44):
  features = frontends.tfnet_input(jnp.asarray(wav44, jnp.float32))
  assert max_abs(features, golden["a_tfnet_norm_input_44k"]) < 1e-5


def test_torchlibrosa_logmel_matches(golden):
  logmel = np.asarray(frontends.torchlibrosa_logmel(jnp.asarray(golden["wav32"])))
  reference = golden["b_tl_logmel_32k"][:, 0]
  assert logmel.shape == (4, 501, 64)
  error = np.abs(logmel - reference)
  assert error.max() < 2e-3
  assert error[reference > -60].max() < 3e-4
  # And librosa's own reflect-padded melspectrogram, an independent implementation.
  assert max_abs(logmel, golden["c_librosa_logmel_32k_reflect"]) < 2e-3


@pytest.mark.parametrize("name", ["mn04_as", "mn04_random_19cls"])
def test_efficientat_logmel_matches(golden_dir, name):
  arrays = np.load(golden_dir / "mn" / f"{name}.io.npz")
  features = np.asarray(frontends.efficientat_logmel(jnp.asarray(arrays["waveform"])))
  assert features.shape == (arrays["waveform"].shape[0], 500, 128)
  assert max_abs(features.transpose(0, 2, 1), arrays["mel_input"]) < 1e-4


def test_efficientat_augmented_without_jitter_equals_eval(golden_dir):
  waveform = jnp.asarray(np.load(golden_dir / "mn" / "mn04_as.io.npz")["waveform"][:2])
  plain = frontends.efficientat_logmel(waveform)
  # randint(0, 1) is 0, so fmin and fmax stay put: the augmented path must give the eval output.
  same = frontends.efficientat_logmel_augmented(waveform, jax.random.key(0), fmin_range=1,
                                                fmax_range=1)
  assert max_abs(plain, same) < 1e-4
  jittered = frontends.efficientat_logmel_augmented(waveform, jax.random.key(1))
  assert max_abs(plain, jittered) > 1e-3


def test_edge_cases_match_upstream_and_stay_finite(golden, wav44):
  wav32 = golden["wav32"]
  cases = {
      "zero": (np.zeros(220500), np.zeros(160000, np.float32)),
      "short2s": (wav44[0][:88200], wav32[0][:64000]),
      "dc": (wav44[1] + 0.25, wav32[1] + np.float32(0.25)),
      "clipped": (np.clip(wav44[3] * 4.0, -1, 1), np.clip(wav32[3] * np.float32(4.0), -1, 1)),
  }
  for name, (signal44, signal32) in cases.items():
    padded44 = audio_io.pad_or_cut(signal44, 220500)[None].astype(np.float32)
    logmel44 = np.asarray(frontends.tfnet_logmel(padded44))[0]
    assert max_abs(logmel44, golden[f"edge_{name}_tfnet_logmel"]) < 1e-3, name
    normalised = np.asarray(frontends.tfnet_input(jnp.asarray(signal44[None], jnp.float32)))[0]
    assert np.all(np.isfinite(normalised)), name
    if name != "zero":  # upstream gives NaN (0/0) for silence; jaxnoise gives zeros
      assert max_abs(normalised, golden[f"edge_{name}_tfnet_norm"]) < 1e-4, name
    logmel32 = np.asarray(frontends.torchlibrosa_logmel(jnp.asarray(signal32[None])))[0]
    assert logmel32.shape == golden[f"edge_{name}_tl_logmel"].shape[2:], name
    assert max_abs(logmel32, golden[f"edge_{name}_tl_logmel"][0, 0]) < 2e-3, name
    mel_efficientat = np.asarray(frontends.efficientat_logmel(jnp.asarray(signal32[None])))
    assert np.all(np.isfinite(mel_efficientat)), name
  assert np.all(np.isnan(golden["edge_zero_tfnet_norm"]))
  silent = np.asarray(frontends.tfnet_input(jnp.zeros((1, 220500))))
  assert np.all(silent == 0.0)
  assert np.all(np.asarray(frontends.tfnet_logmel(jnp.zeros((1, 220500)))) == -100.0)
  silent_efficientat = np.asarray(frontends.efficientat_logmel(jnp.zeros((1, 160000))))
  np.testing.assert_allclose(silent_efficientat, (np.log(1e-5) + 4.5) / 5, rtol=1e-6)


def test_batched_equals_clip_by_clip(golden):
  wav32 = jnp.asarray(golden["wav32"])
  batched = frontends.torchlibrosa_logmel(wav32)
  for index in range(wav32.shape[0]):
    single = frontends.torchlibrosa_logmel(wav32[index:index + 1])
    assert max_abs(batched[index], single[0]) < 1e-4
  vmapped = jax.vmap(lambda clip: frontends.efficientat_logmel(clip[None])[0])(wav32)
  assert max_abs(vmapped, frontends.efficientat_logmel(wav32)) < 1e-5


def test_load_audio_equals_librosa_load(esc50_dir, golden):
  path = esc50_dir / "audio" / "4-192068-A-31.wav"
  at_32k, rate = audio_io.load_audio(path, 32000)
  assert rate == 32000
  assert max_abs(at_32k, golden["wav32"][0]) == 0.0
  native, rate = audio_io.load_audio(path, dtype=np.float64)
  assert rate == 44100
  assert max_abs(native, golden["wav44_int16"][0] / 32768.0) == 0.0
