"""Audio clips as model-ready arrays: decoded and resampled once, cached on disk.

Each clip is cached as ``<cache_dir>/clips/<sha256 of the file>-<rate>hz-<samples or 'whole'>.npz``, so a
changed file, another model rate or another length never reuses a stale entry, and a dataset moved
elsewhere keeps its cache.
"""
import concurrent.futures
import hashlib
import logging
import os
import pathlib
import tempfile
from typing import Sequence

import numpy as np

from jaxnoise.audio import io as audio_io
from jaxnoise.data import esc50
from jaxnoise.errors import AudioError, ConfigError

CACHE_SUBDIR = "clips"
CACHE_FORMAT = 1  # bump when the decoding changes, so old entries are not reused


def _sha256(path: pathlib.Path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as handle:
    for block in iter(lambda: handle.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def check_audio_file(path, *, convert: bool, source_rate: int = esc50.SAMPLE_RATE,
                     source_samples: int = esc50.CLIP_SAMPLES):
  """Raises AudioError if ``path`` is not audio, or (unless ``convert``) not ESC-50's own form.

  ESC-50 clips are mono, ``source_rate`` Hz, ``source_samples`` long. With ``convert`` a stereo
  file is mixed down, another rate resampled and another length padded or cut; without it each
  of those is an error naming the file and the setting that would allow it.
  """
  info = audio_io.check_audio_header(path)
  if convert:
    return
  hint = "; set config.data.convert_audio=True to convert it"
  if info.channels != 1:
    raise AudioError(f"{path} has {info.channels} channels, expected mono{hint}")
  if info.samplerate != source_rate:
    raise AudioError(f"{path} is sampled at {info.samplerate} Hz, expected {source_rate} Hz{hint}")
  if info.frames != source_samples:
    raise AudioError(f"{path} holds {info.frames} samples ({info.frames / info.samplerate:.3f} s), "
                     f"expected {source_samples} ({source_samples / source_rate:g} s){hint}")


def load_clip(path, sample_rate: int, clip_samples: int | None, cache_dir=None, *,
              convert: bool = True) -> np.ndarray:
  """One file as ``[clip_samples]`` float32 mono at ``sample_rate`` (cached when ``cache_dir``);
  ``clip_samples=None`` keeps the whole file."""
  path = pathlib.Path(path)
  check_audio_file(path, convert=convert)
  cache_file = None
  if cache_dir:
    key = f"{_sha256(path)}-{sample_rate}hz-{clip_samples or 'whole'}-v{CACHE_FORMAT}"
    cache_file = pathlib.Path(cache_dir).expanduser() / CACHE_SUBDIR / f"{key}.npz"
    cached = _read_cache(cache_file, clip_samples)
    if cached is not None:
      return cached
  waveform, _ = audio_io.load_audio(path, sample_rate, length=clip_samples)
  if cache_file is not None:
    _write_cache(cache_file, waveform)
  return waveform


def _read_cache(cache_file: pathlib.Path, clip_samples: int):
  if not cache_file.is_file():
    return None
  try:
    with np.load(cache_file) as stored:
      waveform = stored["waveform"]
  except (OSError, ValueError, KeyError, EOFError):
    logging.warning("ignoring unreadable cache entry %s", cache_file)
    return None
  if waveform.ndim != 1 or waveform.dtype != np.float32 or (
      clip_samples is not None and waveform.shape != (clip_samples,)):
    return None
  return waveform


def _write_cache(cache_file: pathlib.Path, waveform: np.ndarray):
  """Atomic (temp file, then rename): concurrent runs and interrupted writes leave no torn file."""
  cache_file.parent.mkdir(parents=True, exist_ok=True)
  handle, temporary = tempfile.mkstemp(prefix=".clip-", suffix=".npz", dir=cache_file.parent)
  try:
    with os.fdopen(handle, "wb") as out:
      np.savez(out, waveform=waveform)
    os.replace(temporary, cache_file)
  except BaseException:
    pathlib.Path(temporary).unlink(missing_ok=True)
    raise


def load_clips(paths: Sequence, sample_rate: int, clip_samples: int | None, cache_dir=None,
               convert: bool = True, *, workers: int | None = None) -> list[np.ndarray]:
  """The files ``paths`` as float32 ``[samples]`` arrays at ``sample_rate``.

  Args:
    paths: audio files.
    sample_rate: the model's rate; clips are resampled with soxr HQ (as ``librosa.load``).
    clip_samples: fixed length (shorter files zero-padded at the end, longer ones cut), or None
      for whole files.
    cache_dir: cache for decoded clips (None: no cache).
    convert: mix down / resample / pad files that are not ESC-50's 44.1 kHz mono 5 s; when False
      such files raise AudioError.
    workers: decoding threads (soundfile and soxr release the GIL); default ``os.cpu_count()``.

  Raises:
    AudioError: a missing, corrupt or non-audio file (or a non-conforming one without ``convert``).
  """
  workers = workers or min(8, os.cpu_count() or 1)
  with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
    return list(pool.map(
        lambda p: load_clip(p, sample_rate, clip_samples, cache_dir, convert=convert), paths))


# --- Clip length --------------------------------------------------------------------------------

# How a file of any length becomes what the model sees (config.data.clip_policy); L is the model's
# clip length (``spec.clip_samples``):
#   first   the first L samples (ESC-50's convention; a 5-s ESC-50 clip is taken whole),
#   center  the middle L samples,
#   pad     the whole file (the network pools over time, as ``predict`` reads a file),
#   windows the whole file cut into consecutive windows of L; the sweep classifies every window
#           and averages their class scores into one decision per file.
# Files left shorter than the longest of the set are then zero-padded at the end to its length (a
# set is one array), and ``windows`` pads to whole windows. Noise is mixed at that length, before
# ``spec.fit_file``'s rule extends a clip shorter than L (zero padding, or HTS-AT's repetition).
CLIP_POLICIES = ("first", "center", "pad", "windows")


def check_clip_policy(policy: str, key: str = "config.data.clip_policy") -> str:
  if policy not in CLIP_POLICIES:
    raise ConfigError(f"{key}={policy!r} is not a clip policy; expected one of {CLIP_POLICIES}")
  return policy


def apply_clip_policy(waveforms: Sequence[np.ndarray], clip_samples: int,
                      policy: str) -> np.ndarray:
  """Whole files ``[samples_i]`` -> ``[files, samples]`` by ``policy`` (see CLIP_POLICIES)."""
  check_clip_policy(policy)
  if policy == "first":
    kept = [w[:clip_samples] for w in waveforms]
  elif policy == "center":
    kept = [w[max(0, (w.shape[0] - clip_samples) // 2):][:clip_samples] for w in waveforms]
  else:
    kept = list(waveforms)
  length = max(w.shape[0] for w in kept)
  if policy == "windows":
    length = -(-length // clip_samples) * clip_samples
  return np.stack([audio_io.pad_or_cut(w, length) for w in kept]).astype(np.float32, copy=False)


def load_set(paths: Sequence, spec, policy: str, cache_dir=None, convert: bool = True,
             *, workers: int | None = None) -> np.ndarray:
  """The clips a stage mixes and classifies: ``[files, samples]`` float32 at the spec's rate,
  by ``policy`` (before ``spec.fit_file``: see CLIP_POLICIES)."""
  if not paths:
    return np.zeros((0, spec.clip_samples), np.float32)
  whole = load_clips(paths, spec.sample_rate, None, cache_dir, convert, workers=workers)
  return apply_clip_policy(whole, spec.clip_samples, policy)
