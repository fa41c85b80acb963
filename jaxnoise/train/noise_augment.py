"""Noise augmentation inside the jitted train step: noise from a pool at a random band-limited SNR.

``config.train.noise_augment`` (off by default). With probability ``probability`` per clip and
step, a clip gets a noise drawn from the pool (``noises``, names as ``config.sweep.noises``, with
``weights``) at an SNR drawn uniformly from ``[snr_low, snr_high]`` dB, measured in the model's band
exactly as the sweep measures it: the clip and noise ``band_power`` of ``jaxnoise.noise`` and its
``mix_with_powers``, whose ``noise_gain`` is the sweep's gain (one gain code path for both). The
clips' powers are measured once per run (``clip_powers``), the noises' in the step. Mixing happens
on the waveform, before the frontend, on the ESC-50 5-s part of the clip (the sweep mixes at that
length too and a model taking longer clips gets the zero padding after it unchanged).

- Colors: a fresh realisation per clip and step, generated on the device from the step's key: one
  white draw per clip (drawn as its spectrum), shaped by the color's spectral gains and normalised
  as ``jaxnoise.noise.colored`` does.
- Recordings (files, folders, ``esc50:<class>``): decoded once at the model's rate into a
  device-resident bank; each clip gets a random recording of the drawn noise and a random crop of
  the clip's length starting anywhere in it, looped (end to start) when the recording is shorter.

Leakage: a recording the sweep of the same config tests with (same file, or an ESC-50 clip of the
same file name elsewhere) is refused unless ``allow_overlap``. Colors are drawn fresh from the
training key, never the sweep's nominal realisation.

Every draw follows from the step key: ``fold_in(step_key, NOISE_STREAM)``, split six ways (whether,
which noise, SNR, white noise, which recording, crop start). Masking, mixup and dropout keep their
own split of the step key, so ``probability = 0`` trains exactly as the plain step.
"""
import dataclasses
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from jaxnoise.audio.io import load_audio
from jaxnoise.data import esc50
from jaxnoise.data import selection as data_selection
from jaxnoise.errors import AudioError, ConfigError
from jaxnoise.noise import band_power, loop_or_cut, mix_with_powers, spectral_gains
from jaxnoise.noise.colored import COLOR_EXPONENTS
from jaxnoise.data import noises as sweep_noises

# fold_in constant of the augmentation stream ('nois'): a stream apart from the split of the step
# key that masking, mixup and dropout use, so turning augmentation on changes none of their draws.
NOISE_STREAM = 0x6E6F6973
MAX_RECORDING_SECONDS = 60
RANDOM_DRAW = ("fold_in(step key, 0x6E6F6973) split 6: applied ~ U < probability, noise ~ "
               "categorical(weights), snr ~ U(snr_low, snr_high), white noise spectrum ~ N(0, 1) per "
               "real and imaginary part, recording "
               "~ uniform among the noise's, crop start ~ U(0, recording length)")


def enabled(train_config) -> bool:
  settings = train_config.get("noise_augment")
  return bool(settings is not None and settings.get("enabled", False))


def resolve_pool(config, selection=None) -> list[sweep_noises.NoiseType]:
  """The training noises of ``config.train.noise_augment.noises``, after the leakage check.

  Names resolve as the sweep's (``jaxnoise.data.noises.parse_noises``); ``esc50:<class>`` takes
  the clips of that class in the data of ``config.data`` (``selection``, by default
  ``jaxnoise.data.selection.select(config)``) and the folders of ``config.sweep.esc50_noise_dirs``.

  Raises:
    ConfigError: an unknown name, a tested class used as noise, or a recording the sweep also
      tests with (naming the file) without ``allow_overlap``.
  """
  settings = config.train.noise_augment
  if selection is None:
    selection = data_selection.select(config)
  common = dict(records=selection.clip_set.clips, data_root=selection.clip_set.where,
                esc50_noise_dirs=tuple(config.sweep.esc50_noise_dirs),
                tested_classes=selection.label_names)
  try:
    pool = sweep_noises.parse_noises(tuple(settings.noises), **common)
  except ConfigError as error:
    raise ConfigError(f"config.train.noise_augment.noises: {error}") from None
  check_weights(settings, pool)
  if not settings.allow_overlap:
    tested = sweep_noises.parse_noises(
        tuple(config.sweep.noises) + tuple(config.sweep.noise_paths), **common)
    check_no_overlap(pool, tested)
  return pool


def check_weights(settings, pool) -> np.ndarray:
  """``[noises]`` probabilities of the pool's noises from ``weights`` (() = equal)."""
  weights = tuple(settings.weights)
  if not weights:
    return np.full(len(pool), 1.0 / len(pool))
  if len(weights) != len(pool):
    raise ConfigError(f"config.train.noise_augment.weights={weights} has {len(weights)} value(s) "
                      f"but the pool has {len(pool)} noise(s) {[n.name for n in pool]}; give one "
                      "weight per noise, or () for equal weights")
  weights = np.asarray(weights, np.float64)
  if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
    raise ConfigError(f"config.train.noise_augment.weights={tuple(settings.weights)} must be "
                      "finite, >= 0 and not all 0")
  return weights / weights.sum()


def _identity(path) -> set:
  """What makes two recordings the same: the real path, and an ESC-50 file name (one clip copied
  into several folders keeps its upstream name)."""
  path = pathlib.Path(path)
  keys = {os.path.realpath(path)}
  if sweep_noises.ESC50_FILE_NAME.match(path.name):
    keys.add(path.name)
  return keys


def check_no_overlap(pool, tested) -> None:
  """ConfigError naming the first training recording that the sweep also tests with."""
  swept = {}
  for noise in tested:
    for path in noise.recordings:
      for key in _identity(path):
        swept.setdefault(key, (noise.name, path))
  for noise in pool:
    for path in noise.recordings:
      for key in _identity(path):
        if key in swept:
          name, other = swept[key]
          raise ConfigError(
              f"config.train.noise_augment.noises: training noise {noise.name!r} uses {path}, "
              f"which the sweep also tests with (noise {name!r}: {other}); training on it would "
              "leak the test noise into the model. Use other recordings, or set "
              "config.train.noise_augment.allow_overlap=True to allow it knowingly")


# --- The device side ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class NoiseAugmenter:
  """What the train step needs, static; ``bank`` (``make_bank``) holds the arrays.

  Attributes:
    probability: chance that a clip gets noise, per clip and step.
    snr_low, snr_high: the SNR range in dB.
    sample_rate, band: the model's rate and SNR band (Hz).
    mix_samples: samples of each clip that are mixed (the 5-s ESC-50 length at the rate).
    names: ``[noises]`` names of the pool.
    log_weights: ``[noises]`` log-probabilities of the pool's noises.
    colors: ``[noises]`` color name or None (a recording).
  """
  probability: float
  snr_low: float
  snr_high: float
  sample_rate: float
  band: tuple
  mix_samples: int
  names: tuple
  log_weights: tuple
  colors: tuple

  @property
  def has_colors(self) -> bool:
    return any(color is not None for color in self.colors)

  @property
  def has_recordings(self) -> bool:
    return any(color is None for color in self.colors)

  def __call__(self, key: jax.Array, waveforms: jax.Array, bank: dict, clip_power=None):
    """``(key, waveforms [batch, samples], bank) -> (waveforms [batch, samples], draws)``.

    ``clip_power [batch]``: the clips' band powers (``clip_powers``) when known, else computed.

    ``draws`` holds, per clip ``[batch]``: ``applied`` (bool), ``noise`` (index into ``names``),
    ``snr_db`` (drawn even where not applied), ``gain`` (0 where not applied), ``recording`` and
    ``start`` (meaningful for recordings).
    """
    batch = waveforms.shape[0]
    length = min(self.mix_samples, waveforms.shape[1])
    clips = waveforms[:, :length]
    apply_key, noise_key, snr_key, white_key, recording_key, start_key = jax.random.split(key, 6)
    applied = jax.random.uniform(apply_key, (batch,)) < self.probability
    which = jax.random.categorical(noise_key, jnp.asarray(self.log_weights, jnp.float32),
                                   shape=(batch,))
    snr = jax.random.uniform(snr_key, (batch,), jnp.float32, self.snr_low, self.snr_high)
    recording = jnp.zeros((batch,), jnp.int32)
    start = jnp.zeros((batch,), jnp.int32)
    noise = None
    if self.has_recordings:
      count = bank["counts"][which]
      recording = bank["offsets"][which] + jnp.floor(
          jax.random.uniform(recording_key, (batch,)) * count).astype(jnp.int32)
      start = jnp.floor(jax.random.uniform(start_key, (batch,))
                        * bank["lengths"][recording]).astype(jnp.int32)
      # Bank rows repeat each recording past its end, so a crop from any start is the loop.
      noise = jax.vmap(lambda row, first: jax.lax.dynamic_slice(
          bank["waves"], (row, first), (1, length))[0])(recording, start)
    if self.has_colors:
      shaped = colored_from_spectrum(white_spectrum(white_key, batch, length),
                                     bank["color_gains"][bank["color_of"][which]], length)
      noise = shaped if noise is None else jnp.where(bank["is_color"][which][:, None], shaped,
                                                     noise)
    if clip_power is None:
      clip_power = band_power(clips, self.sample_rate, self.band)
    noise_power = band_power(noise, self.sample_rate, self.band)
    # +inf dB where no noise is wanted: the gain is exactly 0 (the sweep's clean pass).
    target = jnp.where(applied, snr, jnp.inf)

    def mix_one(clip, clip_power, noise, noise_power, snr):
      """One clip with its own noise: ``mix_with_powers`` on a ``[1, samples]`` pair, one SNR."""
      return mix_with_powers(clip[None], clip_power[None], noise[None], noise_power[None],
                             snr[None])

    mixed = jax.vmap(mix_one)(clips, clip_power, noise, noise_power, target)
    noisy = jnp.where(applied[:, None], mixed.noisy[:, 0, 0, 0], clips)
    if length < waveforms.shape[1]:
      # The sweep mixes at the 5-s length too; the padding of a longer model input stays silent.
      noisy = jnp.concatenate([noisy, waveforms[:, length:]], axis=1)
    draws = {"applied": applied, "noise": which, "snr_db": snr,
             "gain": mixed.gains[:, 0, 0, 0], "recording": recording, "start": start}
    return noisy, draws


def white_spectrum(key: jax.Array, batch: int, length: int) -> jax.Array:
  """``[batch, length // 2 + 1]`` complex: the rfft of Gaussian white noise, drawn directly.

  The rfft bins of white Gaussian noise are independent complex Gaussians, so drawing them saves
  the generator's forward FFT. DC is zeroed by every color's gains; a Nyquist bin (even length) is
  real with twice a component's variance, which ``make_bank`` folds into the gains.
  """
  parts = jax.random.normal(key, (2, batch, length // 2 + 1), jnp.float32)
  return jax.lax.complex(parts[0], parts[1])


def colored_from_spectrum(spectrum: jax.Array, gains: jax.Array, length: int) -> jax.Array:
  """White ``spectrum [batch, bins]`` shaped by ``gains [batch, bins]`` -> ``[batch, length]``
  noise of zero mean and unit variance: ``jaxnoise.noise.colored.shape_spectrum``'s recipe."""
  shaped = jnp.fft.irfft(spectrum * gains, n=length, axis=-1)
  return shaped / jnp.std(shaped, axis=-1, keepdims=True)


def clip_powers(augmenter: NoiseAugmenter, waveforms: np.ndarray, chunk: int = 32) -> np.ndarray:
  """``[clips]`` band powers of the mixed part of ``waveforms [clips, samples]``, computed once per
  run: a clip's power is the same at every step, so the step need not measure it again."""
  length = min(augmenter.mix_samples, waveforms.shape[1])
  return np.concatenate([
      np.asarray(band_power(waveforms[start:start + chunk, :length], augmenter.sample_rate,
                            augmenter.band)) for start in range(0, len(waveforms), chunk)])


def make_augmenter(train_config, spec, pool) -> NoiseAugmenter:
  """The static part for ``spec`` and the resolved ``pool``."""
  settings = train_config.noise_augment
  weights = check_weights(settings, pool)
  with np.errstate(divide="ignore"):
    log_weights = tuple(float(w) for w in np.log(weights))
  return NoiseAugmenter(
      probability=float(settings.probability), snr_low=float(settings.snr_low),
      snr_high=float(settings.snr_high), sample_rate=float(spec.sample_rate),
      band=tuple(float(edge) for edge in spec.band),
      mix_samples=int(round(spec.sample_rate * esc50.CLIP_SECONDS)),
      names=tuple(noise.name for noise in pool), log_weights=log_weights,
      colors=tuple(noise.color for noise in pool))


def make_bank(augmenter: NoiseAugmenter, pool) -> dict:
  """Host arrays of the pool (replicate them on the devices once per run).

  ``waves [recordings, width]``: each recording at the model's rate, repeated end to start to its
  own length + ``mix_samples`` so that any start gives a whole crop; ``lengths [recordings]``;
  ``offsets``/``counts [noises]``: each noise's rows; ``color_gains [colors, bins]`` and
  ``color_of``/``is_color [noises]`` for the colors.

  Raises:
    AudioError: a recording has no power in the model's band (no gain could set an SNR with it).
  """
  length = augmenter.mix_samples
  waves, lengths, offsets, counts = [], [], [], []
  for noise in pool:
    offsets.append(len(waves))
    counts.append(len(noise.recordings))
    for path in noise.recordings:
      # At most a minute of a recording: crops come from its start, and the bank stays small.
      whole, _ = load_audio(path, sample_rate=int(augmenter.sample_rate))
      whole = whole[:MAX_RECORDING_SECONDS * int(augmenter.sample_rate)]
      if len(whole) < 2 or not float(band_power(whole, augmenter.sample_rate,
                                                augmenter.band)) > 0:
        raise AudioError(f"training noise recording {path} has no power in the band "
                         f"{augmenter.band} Hz, so no gain can set an SNR with it; remove it from "
                         "config.train.noise_augment.noises")
      lengths.append(len(whole))
      waves.append(loop_or_cut(whole, len(whole) + length))
  width = max([len(w) for w in waves], default=1)
  bank_waves = np.zeros((max(len(waves), 1), width), np.float32)
  for row, wave in enumerate(waves):
    bank_waves[row, :len(wave)] = wave
  color_names = sorted({c for c in augmenter.colors if c is not None})
  color_gains = np.stack([spectral_gains(length, COLOR_EXPONENTS[c]) for c in color_names]
                         or [np.ones(length // 2 + 1)])
  if length % 2 == 0:
    color_gains[:, -1] *= np.sqrt(2.0)  # the real Nyquist bin of white_spectrum (its doc)
  color_gains = color_gains.astype(np.float32)
  return {"waves": bank_waves, "lengths": np.asarray(lengths or [1], np.int32),
          "offsets": np.asarray(offsets, np.int32), "counts": np.asarray(counts, np.int32),
          "color_gains": color_gains,
          "color_of": np.asarray([color_names.index(c) if c else 0 for c in augmenter.colors],
                                 np.int32),
          "is_color": np.asarray([c is not None for c in augmenter.colors])}


def describe(augmenter: NoiseAugmenter, pool) -> dict:
  """The pool and settings as recorded in the run metadata (the trained model's source)."""
  return {"probability": augmenter.probability, "snr_db": [augmenter.snr_low, augmenter.snr_high],
          "band_hz": list(augmenter.band), "mixed_samples": augmenter.mix_samples,
          "noises": [{**noise.describe(), "weight": float(np.exp(w))}
                     for noise, w in zip(pool, augmenter.log_weights)],
          "random_draws": RANDOM_DRAW}
