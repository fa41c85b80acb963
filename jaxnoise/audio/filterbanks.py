"""Mel filterbanks and windows of the upstream conventions, as ``[frequency_bins, mels]`` matrices.

Slaney banks come from librosa (built once per parameter set, on the host); the Kaldi bank is written
out here, in any array namespace, because EfficientAT's training augmentation redraws its edges for
every batch, which must happen on device inside a jitted step.
"""
import functools

import numpy as np


@functools.lru_cache(maxsize=16)
def slaney_mel(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
  """``librosa.filters.mel`` (Slaney scale and area normalisation), transposed: ``[n_fft//2+1, n_mels]``.

  This is the matrix the TFNet repository and torchlibrosa store (equal to 0.0 max abs).
  """
  import librosa  # pylint: disable=import-outside-toplevel
  matrix = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
  matrix = np.ascontiguousarray(matrix.T, dtype=np.float32)
  matrix.setflags(write=False)
  return matrix


def kaldi_mel_scale(frequency, xp=np):
  return 1127.0 * xp.log(1.0 + frequency / 700.0)


def kaldi_mel(sample_rate: int, n_fft: int, n_mels: int, fmin, fmax, xp=np):
  """Kaldi triangular mel bank (``torchaudio.compliance.kaldi.get_mel_banks`` without VTLN).

  Triangles are equally spaced on the mel scale ``1127 ln(1 + f/700)`` between ``fmin`` and ``fmax``
  and evaluated in the mel domain, without area normalisation. The Nyquist bin gets a zero row, as
  EfficientAT appends one.

  Args:
    fmin, fmax: band edges in Hz; Python floats or traced scalars (``xp=jax.numpy``).
    xp: the array namespace, numpy or jax.numpy.

  Returns:
    ``[n_fft//2 + 1, n_mels]`` float32.
  """
  num_fft_bins = n_fft // 2
  mel_low = kaldi_mel_scale(xp.asarray(fmin, dtype=xp.float32), xp)
  mel_high = kaldi_mel_scale(xp.asarray(fmax, dtype=xp.float32), xp)
  mel_step = (mel_high - mel_low) / (n_mels + 1)
  steps = xp.arange(n_mels, dtype=xp.float32)[:, None]
  left = mel_low + steps * mel_step
  centre = left + mel_step
  right = centre + mel_step
  bin_mel = kaldi_mel_scale(
      xp.arange(num_fft_bins, dtype=xp.float32) * (sample_rate / n_fft), xp)[None, :]
  rising = (bin_mel - left) / (centre - left)
  falling = (right - bin_mel) / (right - centre)
  weights = xp.maximum(0.0, xp.minimum(rising, falling))
  weights = xp.concatenate([weights, xp.zeros((n_mels, 1), dtype=weights.dtype)], axis=1)
  return xp.asarray(weights.T, dtype=xp.float32)


def hann(length: int, symmetric: bool) -> np.ndarray:
  """Hann window: symmetric (denominator N-1, ``np.hanning``) or periodic (``scipy 'hann'``)."""
  denominator = length - 1 if symmetric else length
  n = np.arange(length)
  return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / denominator)


def povey(length: int) -> np.ndarray:
  """Kaldi's "povey" window: a symmetric Hann raised to the power 0.85 (``[length]``)."""
  return hann(length, symmetric=True) ** 0.85


def centre_pad(window: np.ndarray, length: int) -> np.ndarray:
  """Zero-pads ``window`` on both sides to ``length`` (torch.stft's placement of a short window)."""
  left = (length - window.shape[0]) // 2
  return np.pad(window, (left, length - window.shape[0] - left))
