"""ESC-50 clips as model-ready arrays: decoded and resampled once, cached on disk.

Each clip is cached as ``<cache_dir>/clips/<sha256 of the file>-<rate>hz-<samples>.npz``, so a
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
import soundfile

from jaxnoise.audio import io as audio_io
from jaxnoise.data import esc50
from jaxnoise.errors import AudioError

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
  path = pathlib.Path(path)
  if not path.is_file():
    raise AudioError(f"audio file {path} does not exist")
  try:
    info = soundfile.info(str(path))
  except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
    raise AudioError(f"cannot read {path} as audio: {error}") from None
  if info.frames <= 0:
    raise AudioError(f"audio file {path} holds no samples")
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


def load_clip(path, sample_rate: int, clip_samples: int, cache_dir=None, *,
              convert: bool = True) -> np.ndarray:
  """One file as ``[clip_samples]`` float32 mono at ``sample_rate`` (cached when ``cache_dir``)."""
  path = pathlib.Path(path)
  check_audio_file(path, convert=convert)
  cache_file = None
  if cache_dir:
    key = f"{_sha256(path)}-{sample_rate}hz-{clip_samples}-v{CACHE_FORMAT}"
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
  if waveform.shape != (clip_samples,) or waveform.dtype != np.float32:
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


def load_clips(records: Sequence[esc50.Record], root, sample_rate: int, clip_samples: int,
               cache_dir=None, convert: bool = True, *, workers: int | None = None) -> np.ndarray:
  """The clips of ``records`` as ``[clips, clip_samples]`` float32 at ``sample_rate``.

  Args:
    records: rows of the ESC-50 metadata.
    root: the ESC-50 directory (``root/audio/<filename>``).
    sample_rate: the model's rate; clips are resampled with soxr HQ (as ``librosa.load``).
    clip_samples: fixed length; shorter clips are zero-padded at the end, longer ones cut.
    cache_dir: cache for decoded clips (None: no cache).
    convert: mix down / resample / pad files that are not ESC-50's 44.1 kHz mono 5 s; when False
      such files raise AudioError.
    workers: decoding threads (soundfile and soxr release the GIL); default ``os.cpu_count()``.

  Raises:
    AudioError: a missing, corrupt or non-audio file (or a non-conforming one without ``convert``).
  """
  if not records:
    return np.zeros((0, clip_samples), np.float32)
  paths = [esc50.audio_path(root, record) for record in records]
  workers = workers or min(8, os.cpu_count() or 1)
  with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
    waveforms = list(pool.map(
        lambda p: load_clip(p, sample_rate, clip_samples, cache_dir, convert=convert), paths))
  return np.stack(waveforms).astype(np.float32, copy=False)

