"""Property tests: the loader and the frontends never return NaN and fail only with clear errors."""
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxnoise.audio import frontends
from jaxnoise.audio import io as audio_io
from jaxnoise.errors import AudioError

SUBTYPES = {"PCM_U8": np.int16, "PCM_16": np.int16, "PCM_24": np.int32, "PCM_32": np.int32,
            "FLOAT": np.float32, "DOUBLE": np.float64}

# Shapes fixed per test run keep the number of compilations small; values are what varies.
FUZZ = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(subtype=st.sampled_from(sorted(SUBTYPES)),
       rate=st.sampled_from([8000, 16000, 22050, 32000, 44100, 48000, 96000]),
       samples=st.integers(1, 4000), channels=st.integers(1, 3),
       amplitude=st.floats(0.0, 1.0), target_rate=st.sampled_from([None, 32000, 44100]),
       seed=st.integers(0, 2**16))
def test_load_audio_gives_finite_mono_of_the_requested_rate(tmp_path, subtype, rate, samples,
                                                            channels, amplitude, target_rate,
                                                            seed):
  data = np.random.default_rng(seed).uniform(-amplitude, amplitude, (samples, channels))
  path = tmp_path / f"clip_{subtype}.wav"
  soundfile.write(path, data, rate, subtype=subtype)
  waveform, loaded_rate = audio_io.load_audio(path, target_rate, length=1000)
  assert loaded_rate == (target_rate or rate)
  assert waveform.shape == (1000,) and waveform.dtype == np.float32
  assert np.all(np.isfinite(waveform))
  if target_rate in (None, rate):
    # No resampling: exactly the file's samples (as soundfile decodes them), averaged over channels.
    decoded, _ = soundfile.read(path, dtype="float64", always_2d=True)
    expected = audio_io.pad_or_cut(decoded.mean(axis=1), 1000).astype(np.float32)
    np.testing.assert_array_equal(waveform, expected)


@FUZZ
@given(bad=st.sampled_from(["nan", "inf", "huge", "empty", "text", "truncated"]))
def test_load_audio_rejects_bad_files_with_audio_error(tmp_path, bad):
  path = tmp_path / f"bad_{bad}.wav"
  if bad in ("nan", "inf", "huge"):
    data = np.zeros(100)
    data[7] = {"nan": np.nan, "inf": np.inf, "huge": 2 * audio_io.MAX_ABS_SAMPLE}[bad]
    soundfile.write(path, data, 16000, subtype="FLOAT")
  elif bad == "empty":
    path.write_bytes(b"")
  elif bad == "text":
    path.write_text("this is not audio")
  else:
    soundfile.write(path, np.zeros(1000), 16000, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:30])
  with pytest.raises(AudioError, match=str(path.name)):
    audio_io.load_audio(path, 32000)


@FUZZ
@given(values=st.sampled_from(["silence", "dc", "full_scale_square", "tiny", "noise", "loud",
                               "loudest_loadable"]),
       seed=st.integers(0, 2**16))
def test_frontends_stay_finite(values, seed):
  rng = np.random.default_rng(seed)
  n = 32000
  signals = {
      "silence": np.zeros(n),
      "dc": np.full(n, rng.uniform(-1, 1)),
      "full_scale_square": np.sign(np.sin(np.arange(n) * rng.uniform(0.01, 1.0))),
      "tiny": rng.standard_normal(n) * 1e-20,
      "noise": rng.standard_normal(n),
      "loud": rng.standard_normal(n) * 1e4,
      # The loudest square wave the loader accepts, with a margin for noise mixed in at -30 dB.
      "loudest_loadable": np.sign(np.sin(np.arange(n) * rng.uniform(0.01, 1.0)))
                          * audio_io.MAX_ABS_SAMPLE * 100,
  }
  clip = jnp.asarray(signals[values][None], jnp.float32)
  for output in (frontends.tfnet_input(jnp.asarray(np.resize(signals[values], 44100)[None],
                                                   jnp.float32)),
                 frontends.torchlibrosa_logmel(clip), frontends.efficientat_logmel(clip)):
    assert np.all(np.isfinite(np.asarray(output))), values


@settings(max_examples=8, deadline=None)  # every new length compiles the frontends anew
@given(samples=st.integers(2, 3000))
def test_frontends_accept_any_length(samples):
  clip = jnp.asarray(np.random.default_rng(samples).standard_normal((1, samples)), jnp.float32)
  assert frontends.torchlibrosa_logmel(clip).shape == (1, 1 + samples // 320, 64)
  assert frontends.efficientat_logmel(clip).shape == (1, 1 + (samples - 1) // 320, 128)
  assert frontends.tfnet_input(clip).shape == (1, 250, 40)
