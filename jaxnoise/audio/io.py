"""Reading audio files: any format soundfile reads, mixed down to mono, resampled, padded or cut.

Loading happens once per file, on the host, in numpy; everything after it runs in JAX.
"""
import pathlib
import struct

import numpy as np
import soundfile

from jaxnoise.errors import AudioError

# librosa >= 0.10 resamples with soxr 'HQ' (what `librosa.load(sr=...)` and the golden vectors use).
RESAMPLE_QUALITY = "HQ"
# Float files may exceed +-1 (e.g. unnormalised PCM values up to 32768), but not by this much
# (120 dB above full scale): a 5-s sine of amplitude ~1e14 already overflows the float32 band power
# of the sweep, and ~1e16 the frontends' spectra, giving NaN scores.
MAX_ABS_SAMPLE = 1e6


def resample(waveform: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
  """``[samples]`` or ``[samples, channels]`` at ``source_rate`` -> same layout at ``target_rate``.

  soxr HQ, as librosa 0.11's default 'soxr_hq', so resampled clips equal ``librosa.load(sr=...)``.
  """
  if source_rate <= 0 or target_rate <= 0:
    raise AudioError(f"sample rates must be positive, got {source_rate} -> {target_rate}")
  if source_rate == target_rate:
    return waveform
  import soxr  # pylint: disable=import-outside-toplevel
  return soxr.resample(waveform, source_rate, target_rate, quality=RESAMPLE_QUALITY)


def pad_or_cut(waveform: np.ndarray, length: int) -> np.ndarray:
  """``[samples]`` -> ``[length]``: zero-padded at the end or truncated (the upstream convention)."""
  if waveform.shape[0] >= length:
    return waveform[:length]
  return np.pad(waveform, (0, length - waveform.shape[0]))


def load_audio(path, sample_rate: int | None = None, *, length: int | None = None,
               dtype=np.float32) -> tuple[np.ndarray, int]:
  """Reads ``path`` as mono float audio.

  Args:
    path: any file soundfile can read (WAV of 8/16/24/32-bit PCM or float, FLAC, OGG, ...).
    sample_rate: resample to this rate; None keeps the file's rate.
    length: pad with zeros or cut to this many samples (after resampling); None keeps all.
    dtype: output dtype. Integer PCM is scaled to [-1, 1) as soundfile does (int16 / 32768).

  Returns:
    ``(waveform [samples], rate)``.

  Raises:
    AudioError: the file is missing, empty, not audio, or holds NaN/Inf samples or samples beyond
      ``MAX_ABS_SAMPLE``.
  """
  path = pathlib.Path(path)
  check_wav_length(path)
  try:
    # float64 first so the int16 -> float scaling is exact before any resampling.
    data, rate = soundfile.read(path, dtype="float64", always_2d=True)
  except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
    raise AudioError(f"cannot read {path} as audio: {error}") from None
  if data.shape[0] == 0:
    raise AudioError(f"audio file {path} holds no samples")
  if not np.all(np.isfinite(data)):
    raise AudioError(f"audio file {path} holds NaN or Inf samples")
  peak = float(np.max(np.abs(data)))
  if peak > MAX_ABS_SAMPLE:
    raise AudioError(f"audio file {path} has samples up to {peak:.3g}; expected audio within +-1 "
                     f"(at most +-{MAX_ABS_SAMPLE:g}, beyond which its float32 spectra overflow): "
                     "rescale it")
  # Mean over channels, as librosa.to_mono and the upstream loaders do.
  mono = data.mean(axis=1)
  if sample_rate is not None and sample_rate != rate:
    if sample_rate <= 0:
      raise AudioError(f"target sample rate must be positive, got {sample_rate}")
    # Resampling float32 input matches librosa.load, which decodes to float32 first.
    mono = resample(mono.astype(np.float32), rate, sample_rate)
    rate = sample_rate
  if length is not None:
    mono = pad_or_cut(mono, length)
  return np.asarray(mono, dtype=dtype), rate


# A data chunk of unknown length: streaming writers (ffmpeg to a pipe) put 0 or 0xFFFFFFFF there.
UNKNOWN_DATA_SIZES = (0, 0xFFFFFFFF)


def check_wav_length(path) -> None:
  """AudioError if ``path`` is a RIFF/WAVE file whose data chunk announces more bytes than the file
  holds (a truncated copy).

  libsndfile reads such a file silently as a shorter clip, which would then be classified as if
  whole; a file that is not RIFF/WAVE (FLAC, OGG, ...) or whose data size is unknown passes.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise AudioError(f"audio file {path} does not exist")
  size = path.stat().st_size
  with open(path, "rb") as handle:
    header = handle.read(12)
    if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
      return
    position = 12
    while position + 8 <= size:
      handle.seek(position)
      chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
      if chunk_id == b"data":
        held = size - position - 8
        if chunk_size not in UNKNOWN_DATA_SIZES and chunk_size > held:
          raise AudioError(f"{path} is truncated: its WAV header announces {chunk_size} bytes of "
                           f"audio but the file holds {held} (a partial copy?)")
        return
      position += 8 + chunk_size + (chunk_size & 1)  # chunks are padded to even sizes


def check_audio_header(path):
  """``soundfile.info`` of ``path`` after checking it is readable, non-empty audio and not a
  truncated WAV (``check_wav_length``); AudioError naming the file otherwise."""
  check_wav_length(path)
  try:
    info = soundfile.info(str(path))
  except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
    raise AudioError(f"cannot read {path} as audio: {error}") from None
  if info.frames <= 0:
    raise AudioError(f"audio file {path} holds no samples")
  return info


AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".mp3", ".opus")


def list_audio_files(paths) -> list[pathlib.Path]:
  """Files among ``paths`` plus audio files found recursively in directories, sorted per folder.

  Raises:
    AudioError: a path does not exist, or a directory holds no audio file.
  """
  files = []
  for entry in paths:
    entry = pathlib.Path(entry)
    if entry.is_dir():
      found = sorted(p for p in entry.rglob("*")
                     if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
      if not found:
        raise AudioError(f"directory {entry} contains no audio files ({', '.join(AUDIO_SUFFIXES)})")
      files.extend(found)
    elif entry.is_file():
      files.append(entry)
    else:
      raise AudioError(f"{entry} does not exist")
  return files
