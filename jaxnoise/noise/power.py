"""In-band power, noise gain and mixing, exactly as the study defines them.

The study's band power of a signal ``x`` sampled at ``fs`` is (scipy, float64)::

  f, Pxx = scipy.signal.periodogram(x, fs)   # boxcar window, nfft = len(x), mean removed,
                                             # one-sided density scaling
  ind_min = argmax(f > fmin) - 1
  ind_max = argmax(f > fmax) - 1
  P = scipy.integrate.trapezoid(Pxx[ind_min:ind_max], f[ind_min:ind_max])

Quirks reproduced on purpose (numbers for 5-s clips, df = 0.2 Hz):
- The lower edge is the last bin <= fmin, so the band reaches one bin below fmin when fmin is off
  the frequency grid; with fmin = 0 it starts at DC (the periodogram removed the mean, so a DC
  offset still adds nothing).
- The upper edge drops the last bin <= fmax: the bin at fmax is excluded when fmax is on the grid
  ((50, 11025) at 44.1 kHz integrates bins 250 .. 55124, i.e. 50.0 .. 11024.8 Hz).
- If fmax >= fs / 2 no bin exceeds it, argmax returns 0, ind_max = -1, and the slice silently drops
  only the last (Nyquist) bin.
- The trapezoid gives the two end bins of the slice half weight.

Here the indices are computed once in numpy from (num_samples, sample_rate, band) and become a
static slice and a weight vector, so ``P = sum_k weight_k * |rfft(x - mean(x))_k|^2`` over the
slice: one float32 rfft per signal, batched, jit-able. The weights fold in the density scaling
``1 / (fs * n)``, the one-sided doubling and the trapezoid's ``diff(f)`` weights taken from the same
``f`` scipy uses. The float32 result matches scipy's float64 one to about 1e-7 relative.

Mixing: ``alpha = sqrt(P_x * 10 ** (-snr / 10) / P_n0)`` and ``noisy = x + alpha * noise``. A silent
clip (P_x = 0) gets alpha = 0 (no noise inserted, the study's behaviour) and is reported in the
result's mask; a noise with no power in the band (P_n0 = 0) gets alpha = 0 and is reported too,
never a NaN or Inf.
"""
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnoise.errors import ConfigError

# Partial sums over blocks of this many bins, then a sum of the partials: float32 rounding error
# grows with the longest chain of additions, and a plain dot over ~55000 bins lost up to 8e-6
# relative against scipy where the two-level sum keeps ~1e-7.
_SUM_BLOCK = 256


def as_band(band) -> tuple[float, float]:
  """``band`` as ``(fmin, fmax)`` floats; ConfigError if it is not two numbers."""
  try:
    fmin, fmax = (float(edge) for edge in band)
  except (TypeError, ValueError):
    raise ConfigError(f"band must be two numbers (fmin, fmax) in Hz, got {band!r}") from None
  return fmin, fmax


def band_indices(num_samples: int, sample_rate: float, band) -> tuple[int, int]:
  """The study's ``(ind_min, ind_max)`` for a signal of ``num_samples`` at ``sample_rate``.

  These are the raw values, quirks included: ``ind_max`` is -1 when ``fmax >= sample_rate / 2``.
  """
  fmin, fmax = as_band(band)
  frequencies = np.fft.rfftfreq(num_samples, 1.0 / sample_rate)
  return int(np.argmax(frequencies > fmin)) - 1, int(np.argmax(frequencies > fmax)) - 1


@functools.lru_cache(maxsize=64)
def _band_weights(num_samples: int, sample_rate: float, band: tuple) -> tuple[int, int, np.ndarray]:
  """``(start, stop, weights [stop - start])``: P = sum(weights * |rfft|^2[start:stop])."""
  fmin, fmax = band
  if num_samples < 2 or sample_rate <= 0:
    raise ConfigError(f"band power needs >= 2 samples and a positive sample rate, got "
                      f"num_samples={num_samples}, sample_rate={sample_rate}")
  if not 0 <= fmin < fmax:
    raise ConfigError(f"band must satisfy 0 <= fmin < fmax, got ({fmin:g}, {fmax:g}) Hz")
  ind_min, ind_max = band_indices(num_samples, sample_rate, band)
  frequencies = np.fft.rfftfreq(num_samples, 1.0 / sample_rate)
  # Python's slice semantics (negative indices) exactly as Pxx[ind_min:ind_max] applies them.
  start, stop, _ = slice(ind_min, ind_max).indices(frequencies.shape[0])
  if stop - start < 2:
    raise ConfigError(
        f"band ({fmin:g}, {fmax:g}) Hz holds fewer than 2 periodogram bins for {num_samples} "
        f"samples at {sample_rate:g} Hz (bins {ind_min}:{ind_max}); its power would always be 0")
  spacing = np.diff(frequencies[start:stop])
  trapezoid = np.zeros(stop - start)
  trapezoid[:-1] += spacing / 2.0
  trapezoid[1:] += spacing / 2.0
  one_sided = np.full(frequencies.shape[0], 2.0)
  one_sided[0] = 1.0  # DC is not doubled,
  if num_samples % 2 == 0:
    one_sided[-1] = 1.0  # nor the Nyquist bin when there is one.
  density = 1.0 / (sample_rate * num_samples)  # boxcar window: sum(window ** 2) = n
  return start, stop, trapezoid * one_sided[start:stop] * density


def _blocked_sum(values: jax.Array) -> jax.Array:
  """Sum over the last axis ``[..., n] -> [...]`` in two levels (see _SUM_BLOCK)."""
  length = values.shape[-1]
  padding = (-length) % _SUM_BLOCK
  values = jnp.pad(values, [(0, 0)] * (values.ndim - 1) + [(0, padding)])
  blocks = values.reshape(values.shape[:-1] + (-1, _SUM_BLOCK))
  return blocks.sum(axis=-1).sum(axis=-1)


@functools.partial(jax.jit, static_argnames=("sample_rate", "band"))
def _band_power(waveform, sample_rate, band):
  start, stop, weights = _band_weights(waveform.shape[-1], sample_rate, band)
  centred = waveform - jnp.mean(waveform, axis=-1, keepdims=True)  # detrend='constant'
  spectrum = jnp.fft.rfft(centred, axis=-1)[..., start:stop]
  power = jnp.square(spectrum.real) + jnp.square(spectrum.imag)
  return _blocked_sum(power * jnp.asarray(weights, dtype=power.dtype))


def band_power(waveform: jax.Array, sample_rate: float, band) -> jax.Array:
  """In-band power ``[..., samples] -> [...]`` of the study (module doc), in the input's dtype.

  Args:
    waveform: float signals, e.g. ``[batch, samples]``; float32 unless x64 is enabled.
    sample_rate: Hz, a Python number (the indices are static).
    band: ``(fmin, fmax)`` in Hz, Python numbers.

  Raises:
    ConfigError: fmin < 0, fmin >= fmax, or fewer than 2 bins in the band.
  """
  return _band_power(jnp.asarray(waveform), float(sample_rate), as_band(band))


def noise_gain(clip_power: jax.Array, noise_power: jax.Array, snr_db: jax.Array) -> jax.Array:
  """``alpha = sqrt(P_x * 10 ** (-snr / 10) / P_n0)``, broadcast; 0 where P_x = 0 or P_n0 = 0."""
  audible = noise_power > 0
  ratio = clip_power * 10.0 ** (-snr_db / 10.0) / jnp.where(audible, noise_power, 1.0)
  return jnp.where(audible, jnp.sqrt(jnp.maximum(ratio, 0.0)), 0.0)


class MixResult(NamedTuple):
  """What one mixing call returns (a pytree, so it passes through jit).

  Attributes:
    noisy: ``[clips, noises, snrs, samples]`` = clip + gain * noise.
    gains: ``[clips, noises, snrs]`` alpha of each mix.
    clip_powers: ``[clips]`` P_x.
    noise_powers: ``[noises]`` P_n0.
    silent_clips: ``[clips]`` bool, P_x = 0: no noise was inserted into these (gain 0).
    silent_noises: ``[noises]`` bool, P_n0 = 0: these noises cannot set an SNR (gain 0).
  """
  noisy: jax.Array
  gains: jax.Array
  clip_powers: jax.Array
  noise_powers: jax.Array
  silent_clips: jax.Array
  silent_noises: jax.Array


@jax.jit
def mix_with_powers(clips: jax.Array, clip_powers: jax.Array, noises: jax.Array,
                    noise_powers: jax.Array, snrs_db: jax.Array) -> MixResult:
  """Mixes every clip with every noise at every SNR, from precomputed powers.

  For chunked sweeps: noise powers are computed once, clip powers once per clip, and each chunk of
  clips (or of SNRs) reuses them.

  Args:
    clips: ``[clips, samples]``.
    clip_powers: ``[clips]`` band powers of the clips.
    noises: ``[noises, samples]``.
    noise_powers: ``[noises]`` band powers of the noises, same band.
    snrs_db: ``[snrs]`` target in-band SNRs in dB.

  Returns:
    MixResult with ``noisy [clips, noises, snrs, samples]``.
  """
  snrs_db = jnp.asarray(snrs_db, clips.dtype)
  gains = noise_gain(clip_powers[:, None, None], noise_powers[None, :, None],
                     snrs_db[None, None, :]).astype(clips.dtype)
  noisy = clips[:, None, None, :] + gains[..., None] * noises[None, :, None, :]
  return MixResult(noisy=noisy, gains=gains, clip_powers=clip_powers, noise_powers=noise_powers,
                   silent_clips=clip_powers <= 0, silent_noises=noise_powers <= 0)


def mix(clips: jax.Array, noises: jax.Array, snrs_db, sample_rate: float, band) -> MixResult:
  """Band powers of clips and noises, then every mix: ``[clips, noises, snrs, samples]``.

  Args:
    clips: ``[clips, samples]`` float32.
    noises: ``[noises, samples]``, same length and rate as the clips.
    snrs_db: ``[snrs]`` target in-band SNRs in dB.
    sample_rate: Hz of both.
    band: ``(fmin, fmax)`` in Hz in which SNR is defined.
  """
  clips, noises = jnp.asarray(clips), jnp.asarray(noises)
  if clips.shape[-1] != noises.shape[-1]:
    raise ConfigError(f"clips have {clips.shape[-1]} samples but noises {noises.shape[-1]}; "
                      "bring the noise to the clip length first")
  return _mix(clips, noises, jnp.asarray(snrs_db, clips.dtype), float(sample_rate), as_band(band))


@functools.partial(jax.jit, static_argnames=("sample_rate", "band"))
def _mix(clips, noises, snrs_db, sample_rate, band):
  return mix_with_powers(clips, _band_power(clips, sample_rate, band), noises,
                         _band_power(noises, sample_rate, band), snrs_db)
