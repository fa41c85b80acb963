"""Recorded noise (any file soundfile reads), and one entry point for every noise by name.

A recording is mixed down to mono (mean over channels), resampled to the model's rate (soxr HQ, as
``librosa.load``) and brought to the clip length: a longer recording is cut (its start is kept), a
shorter one is looped, i.e. repeated end to start as many times as needed (``np.tile``), then cut.
The loop joins are hard splices without a crossfade, so a recording whose ends differ gets a step
there, which is broadband; for the 5-s ESC-50 noises at 5-s clips no loop happens.
"""
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from jaxnoise.audio.io import load_audio
from jaxnoise.errors import ConfigError
from jaxnoise.noise.colored import COLORS, colored_noise


def loop_or_cut(waveform: np.ndarray, num_samples: int) -> np.ndarray:
  """``[samples]`` -> ``[num_samples]``: the start of the recording, repeated if it is too short."""
  if waveform.shape[0] == 0:
    raise ConfigError("cannot loop an empty recording to a clip length")
  repeats = -(-num_samples // waveform.shape[0])  # ceil division
  return np.tile(waveform, repeats)[:num_samples]


def load_noise_file(path, sample_rate: int, num_samples: int) -> np.ndarray:
  """A recording as mono float32 ``[num_samples]`` at ``sample_rate``, looped or cut (module doc).

  Raises:
    AudioError: the file is missing or not readable audio.
  """
  waveform, _ = load_audio(path, sample_rate=sample_rate)
  return loop_or_cut(waveform, num_samples)


def is_color(name: str) -> bool:
  return name in COLORS


def check_noise_name(name: str) -> None:
  """ConfigError unless ``name`` is a color or an existing file (the message lists the colors)."""
  if not is_color(name) and not pathlib.Path(name).is_file():
    raise ConfigError(
        f"unknown noise {name!r}: expected a color ({', '.join(COLORS)}) or the path of an "
        "existing audio file")


def noise_label(name: str) -> str:
  """A short name for file names and tables: the color, or the recording's file stem."""
  return name if is_color(name) else pathlib.Path(name).stem


def noise_labels(names) -> list[str]:
  """Checks every name (check_noise_name) and that their labels differ; returns the labels."""
  for name in names:
    check_noise_name(name)
  labels = [noise_label(name) for name in names]
  if len(set(labels)) != len(labels):
    raise ConfigError(f"noises {list(names)} do not have distinct names {labels}; rename a file")
  return labels


def noise_by_name(name: str, key: jax.Array, num_samples: int, sample_rate: int,
                  generator: str = "psd") -> jax.Array:
  """A noise ``[num_samples]`` float32 at ``sample_rate``, from a color name or an audio file path.

  Args:
    name: one of ``COLORS`` (a color wins over a file of the same name), or the path of an audio
      file.
    key: PRNG key for colored noise (unused for a recording, which is deterministic).
    num_samples: clip length in samples.
    sample_rate: rate of the clips the noise will be mixed into.
    generator: the colored-noise generator (``jaxnoise.noise.colored.GENERATORS``).

  Raises:
    ConfigError: ``name`` is neither a color nor an existing file.
    AudioError: the file cannot be read as audio.
  """
  check_noise_name(name)
  if is_color(name):
    return colored_noise(key, num_samples, name, generator=generator)
  return jnp.asarray(load_noise_file(name, sample_rate, num_samples))
