"""Colored Gaussian noise from a PRNG key: white, pink, brown, blue and violet.

A color is a power spectral density proportional to ``f ** exponent``. Noise of a color is white
Gaussian noise whose rfft bin ``k`` is multiplied by ``k ** (exponent / 2)`` (amplitude is the
square root of power), with the DC bin set to zero, then transformed back. This is the study's
recipe for pink noise (``X[k] *= 1 / sqrt(k)``, ``X[0] = 0``) applied to every exponent.

The sample rate does not enter: bin ``k`` sits at ``k * sample_rate / num_samples`` Hz, so shaping
by ``(k * df) ** (exponent / 2)`` differs from shaping by ``k ** (exponent / 2)`` only by a constant
factor, which the normalisation below removes. The same function therefore serves every rate.

Normalisation: each realisation is divided by its own standard deviation (over its samples, as the
study does with ``pink /= np.std(pink)``), so it has zero mean and unit variance exactly. Mixing
rescales the noise to the requested SNR anyway, so this changes no noisy clip; it makes realisations
of different colors and lengths comparable (the nominal noise power table) and keeps float32 values
near 1 where an unnormalised brown or violet spectrum would be far from it.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxnoise.errors import ConfigError

# PSD exponent per color: PSD ∝ f ** exponent, i.e. 10 * exponent dB per decade.
COLOR_EXPONENTS = {"white": 0.0, "pink": -1.0, "brown": -2.0, "blue": 1.0, "violet": 2.0}
COLORS = tuple(COLOR_EXPONENTS)


def color_exponent(color: str) -> float:
  """The PSD exponent of ``color``; ConfigError naming the valid colors for anything else."""
  if color not in COLOR_EXPONENTS:
    raise ConfigError(f"unknown noise color {color!r}: expected one of {', '.join(COLORS)}")
  return COLOR_EXPONENTS[color]


def spectral_gains(num_samples: int, exponent: float) -> np.ndarray:
  """Amplitude gain per rfft bin ``[num_samples // 2 + 1]``: ``k ** (exponent / 2)``, 0 at DC.

  DC is zeroed because ``0 ** exponent`` is infinite for the red colors and because noise with a
  mean would only add power at 0 Hz, which the band power ignores (its periodogram removes the
  mean).
  """
  bins = np.arange(num_samples // 2 + 1, dtype=np.float64)
  gains = np.zeros_like(bins)
  gains[1:] = bins[1:] ** (exponent / 2.0)
  return gains


def shape_spectrum(white: jax.Array, exponent: float) -> jax.Array:
  """White noise ``[..., samples]`` -> noise with PSD ∝ f ** exponent ``[..., samples]``.

  The result has zero mean and unit standard deviation along the last axis.
  """
  num_samples = white.shape[-1]
  if exponent == 0.0:
    # A flat gain with DC zeroed is just mean removal; skip the two FFTs.
    shaped = white - jnp.mean(white, axis=-1, keepdims=True)
  else:
    gains = jnp.asarray(spectral_gains(num_samples, exponent), dtype=white.dtype)
    shaped = jnp.fft.irfft(jnp.fft.rfft(white, axis=-1) * gains, n=num_samples, axis=-1)
  return shaped / jnp.std(shaped, axis=-1, keepdims=True)


@functools.partial(jax.jit, static_argnames=("num_samples", "color", "dtype"))
def colored_noise(key: jax.Array, num_samples: int, color: str,
                  dtype=jnp.float32) -> jax.Array:
  """One realisation ``[num_samples]`` of ``color`` noise, zero mean, unit variance.

  Args:
    key: a PRNG key (``jax.random.key(seed)``). The five colors drawn from one key are the same
      white draw shaped five ways.
    num_samples: length, at least 2 (any integer; the FFT handles every length).
    color: one of ``COLORS``.
    dtype: float dtype of the result.
  """
  exponent = color_exponent(color)
  if num_samples < 2:
    raise ConfigError(f"noise needs at least 2 samples, got num_samples={num_samples}")
  white = jax.random.normal(key, (num_samples,), dtype)
  return shape_spectrum(white, exponent)


def colored_noise_batch(keys: jax.Array, num_samples: int, color: str,
                        dtype=jnp.float32) -> jax.Array:
  """Keys ``[batch]`` -> independent realisations ``[batch, num_samples]``, by vmap."""
  return jax.vmap(lambda key: colored_noise(key, num_samples, color, dtype))(keys)
