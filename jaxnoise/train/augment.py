"""Training-time augmentation on device: SpecAugment-style masking and mixup.

Pure functions of a PRNG key, traceable under ``jit`` and shardable over the batch axis.
"""
import jax
import jax.numpy as jnp


def _band_mask(key: jax.Array, batch: int, size: int, count: int, max_width: int) -> jax.Array:
  """``[batch, size]`` bool, True inside ``count`` random bands per example.

  Each band has width ``floor(U(0, max_width))`` (0..max_width-1, as the TFNet repository's
  SpecAugment) and a start uniform over the positions where it fits.
  """
  if count == 0 or max_width == 0:
    return jnp.zeros((batch, size), bool)
  width_key, start_key = jax.random.split(key)
  widths = jnp.floor(jax.random.uniform(width_key, (batch, count)) * max_width).astype(jnp.int32)
  widths = jnp.minimum(widths, size)
  # Start in [0, size - width], uniformly: scale a uniform draw by the number of valid starts.
  starts = jnp.floor(jax.random.uniform(start_key, (batch, count))
                     * (size - widths + 1)).astype(jnp.int32)
  positions = jnp.arange(size)[None, None, :]
  inside = (positions >= starts[..., None]) & (positions < (starts + widths)[..., None])
  return jnp.any(inside, axis=1)


def mask_time_frequency(key: jax.Array, features: jax.Array, *, time_masks: int,
                        time_mask_width: int, freq_masks: int, freq_mask_width: int,
                        time_axis: int = 1, freq_axis: int = 2) -> jax.Array:
  """Zeroes random time and frequency bands of each example (SpecAugment without warping).

  Args:
    key: PRNG key.
    features: ``[batch, time, freq, ...]`` (other layouts via ``time_axis``/``freq_axis``).
    time_masks, freq_masks: bands per example along each axis.
    time_mask_width, freq_mask_width: exclusive upper bound of a band's width in bins.

  Returns:
    ``features`` with the masked bins set to 0, same shape and dtype.
  """
  batch = features.shape[0]
  time_key, freq_key = jax.random.split(key)
  time_mask = _band_mask(time_key, batch, features.shape[time_axis], time_masks, time_mask_width)
  freq_mask = _band_mask(freq_key, batch, features.shape[freq_axis], freq_masks, freq_mask_width)

  def along(mask, axis):
    shape = [1] * features.ndim
    shape[0], shape[axis] = batch, mask.shape[1]
    return mask.reshape(shape)

  masked = along(time_mask, time_axis) | along(freq_mask, freq_axis)
  return jnp.where(masked, jnp.zeros((), features.dtype), features)


def mixup_partners(key: jax.Array, batch: int, alpha: float):
  """Partners and weights for mixup: ``(partner [batch] int32, lam [batch] float32)``.

  Each example is mixed with ``partner`` (a random permutation of the batch) and keeps weight
  ``lam = max(b, 1 - b)``, ``b ~ Beta(alpha, alpha)`` per example (EfficientAT's convention), so
  its own label always dominates. ``alpha <= 0`` gives ``lam = 1`` (no mixing).
  """
  if alpha <= 0:
    return jnp.arange(batch), jnp.ones((batch,), jnp.float32)
  permutation_key, beta_key = jax.random.split(key)
  partner = jax.random.permutation(permutation_key, batch)
  draw = jax.random.beta(beta_key, alpha, alpha, (batch,))
  return partner, jnp.maximum(draw, 1.0 - draw).astype(jnp.float32)


def mixup(key: jax.Array, features: jax.Array, alpha: float):
  """Mixes each example with a random partner: ``(mixed, partner, lam)``; see ``mixup_partners``."""
  partner, lam = mixup_partners(key, features.shape[0], alpha)
  return mix(features, partner, lam), partner, lam


def mix(features: jax.Array, partner: jax.Array, lam: jax.Array) -> jax.Array:
  """``lam * x + (1 - lam) * x[partner]`` with ``lam [batch]`` broadcast over the other axes."""
  weight = lam.reshape((-1,) + (1,) * (features.ndim - 1)).astype(features.dtype)
  return weight * features + (1 - weight) * features[partner]
