"""Colored Gaussian noise from a PRNG key: white, pink, brown, blue and violet.

A color is a power spectral density proportional to ``f ** exponent``. Noise of a color is white
Gaussian noise whose rfft bins are multiplied by a gain, then transformed back. Two generators
(``GENERATORS``) differ only in that gain:

- ``"psd"``: bin ``k`` (DC is bin 0) times ``k ** (exponent / 2)`` (amplitude is the square root
  of power), DC set to zero: an f ** exponent shape down to the lowest bin. This is the study's
  recipe for pink noise (``X[k] *= 1 / sqrt(k)``, ``X[0] = 0``) applied to every exponent.
- ``"study"``: the MATLAB routine the study generated its colored noises with (Zhivomirov,
  MathWorks File Exchange 42919): the one-sided spectrum's bin ``i``, counted from 1 at DC, times
  ``i ** (exponent / 2)``; the conjugate-symmetric spectrum's real IFFT; then zero mean. Bin ``k``
  thus gets ``(k + 1) ** (exponent / 2)``: DC keeps a gain of 1 and the lowest bins are weighted
  less steeply than f ** exponent, which for brown noise moves most of the power from the first
  few bins (below 1 Hz for 5-s clips) up into the SNR band: several times more power in 50-11025
  Hz than ``"psd"`` (the study's Table 4.7).

White noise is the same under both (the study made it with the blue routine at exponent 0).

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
# The spectral shaping of colored noise (module doc); "psd" is the default everywhere.
GENERATORS = ("psd", "study")


def color_exponent(color: str) -> float:
  """The PSD exponent of ``color``; ConfigError naming the valid colors for anything else."""
  if color not in COLOR_EXPONENTS:
    raise ConfigError(f"unknown noise color {color!r}: expected one of {', '.join(COLORS)}")
  return COLOR_EXPONENTS[color]


def check_generator(generator: str) -> str:
  """``generator`` if it is one of ``GENERATORS``; ConfigError naming them otherwise."""
  if generator not in GENERATORS:
    raise ConfigError(f"unknown colored-noise generator {generator!r}: expected one of "
                      f"{', '.join(GENERATORS)}")
  return generator


def spectral_gains(num_samples: int, exponent: float, generator: str = "psd") -> np.ndarray:
  """Amplitude gain per rfft bin ``[num_samples // 2 + 1]`` of ``generator`` (module doc).

  ``"psd"``: ``k ** (exponent / 2)``, 0 at DC. DC is zeroed because ``0 ** exponent`` is infinite
  for the red colors and because noise with a mean would only add power at 0 Hz, which the band
  power ignores (its periodogram removes the mean). ``"study"``: ``(k + 1) ** (exponent / 2)``.
  """
  bins = np.arange(num_samples // 2 + 1, dtype=np.float64)
  if check_generator(generator) == "study":
    return (bins + 1.0) ** (exponent / 2.0)
  gains = np.zeros_like(bins)
  gains[1:] = bins[1:] ** (exponent / 2.0)
  return gains


def shape_spectrum(white: jax.Array, exponent: float, generator: str = "psd") -> jax.Array:
  """White noise ``[..., samples]`` -> noise with PSD ∝ f ** exponent ``[..., samples]``.

  The result has zero mean and unit standard deviation along the last axis.
  """
  num_samples = white.shape[-1]
  if exponent == 0.0:
    # A flat gain (with DC zeroed, or the study's gain 1 and mean removal) is just mean removal:
    # skip the two FFTs.
    shaped = white - jnp.mean(white, axis=-1, keepdims=True)
  else:
    gains = jnp.asarray(spectral_gains(num_samples, exponent, generator), dtype=white.dtype)
    shaped = jnp.fft.irfft(jnp.fft.rfft(white, axis=-1) * gains, n=num_samples, axis=-1)
    if generator == "study":
      # Its DC gain is 1, so the draw's mean passes through; the routine removes it afterwards.
      shaped = shaped - jnp.mean(shaped, axis=-1, keepdims=True)
  return shaped / jnp.std(shaped, axis=-1, keepdims=True)


@functools.partial(jax.jit, static_argnames=("num_samples", "color", "dtype", "generator"))
def colored_noise(key: jax.Array, num_samples: int, color: str, dtype=jnp.float32,
                  generator: str = "psd") -> jax.Array:
  """One realisation ``[num_samples]`` of ``color`` noise, zero mean, unit variance.

  Args:
    key: a PRNG key (``jax.random.key(seed)``). The five colors drawn from one key are the same
      white draw shaped five ways.
    num_samples: length, at least 2 (any integer; the FFT handles every length).
    color: one of ``COLORS``.
    dtype: float dtype of the result.
    generator: one of ``GENERATORS`` (module doc); both shape the same white draw of ``key``.
  """
  exponent = color_exponent(color)
  check_generator(generator)
  if num_samples < 2:
    raise ConfigError(f"noise needs at least 2 samples, got num_samples={num_samples}")
  white = jax.random.normal(key, (num_samples,), dtype)
  return shape_spectrum(white, exponent, generator)


def colored_noise_batch(keys: jax.Array, num_samples: int, color: str, dtype=jnp.float32,
                        generator: str = "psd") -> jax.Array:
  """Keys ``[batch]`` -> independent realisations ``[batch, num_samples]``, by vmap."""
  return jax.vmap(lambda key: colored_noise(key, num_samples, color, dtype, generator))(keys)
