"""The log-mel frontends of the study's models and of BEATs, as pure jit-able JAX functions.

All take a float waveform ``[batch, samples]`` at the model's rate and return ``[batch, frames, mels]``
float32. Filterbanks and windows are host constants built once; framing uses slices of a hop-strided
view (no gather), the DFT is an rfft, and the mel projection a matmul.

1. ``tfnet_logmel`` / ``tfnet_input``: the TFNet repository (CNN10, TFNet), 44.1 kHz.
2. ``torchlibrosa_logmel``: PANNs and HTS-AT, 32 kHz.
3. ``efficientat_logmel``: EfficientAT MobileNetV3, 32 kHz.
4. ``kaldi_fbank`` / ``beats_fbank``: torchaudio's Kaldi-compatible fbank, BEATs, 16 kHz.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxnoise.audio import filterbanks

# power_to_db's floor: 10*log10(1e-10) = -100 dB for silence, in both dB frontends.
DB_FLOOR = 1e-10


def frame(waveform: jax.Array, frame_length: int, hop: int) -> jax.Array:
  """``[batch, samples]`` -> ``[batch, frames, frame_length]`` with ``1 + (samples - frame_length) // hop``.

  Frame i is the concatenation of hop-sized chunks i, i+1, ... cut to ``frame_length``: contiguous
  slices and reshapes only, which XLA fuses, instead of a gather of frames*frame_length indices.
  """
  batch, samples = waveform.shape
  num_frames = 1 + (samples - frame_length) // hop
  chunks_per_frame = -(-frame_length // hop)
  num_chunks = num_frames + chunks_per_frame - 1
  needed = num_chunks * hop
  if needed > samples:
    waveform = jnp.pad(waveform, ((0, 0), (0, needed - samples)))
  chunks = waveform[:, :needed].reshape(batch, num_chunks, hop)
  pieces = [chunks[:, offset:offset + num_frames] for offset in range(chunks_per_frame)]
  return jnp.concatenate(pieces, axis=-1)[..., :frame_length]


def power_spectrogram(waveform: jax.Array, n_fft: int, hop: int, window: np.ndarray) -> jax.Array:
  """Centred, reflect-padded STFT power ``|X|^2``: ``[batch, samples]`` -> ``[batch, frames, n_fft//2+1]``.

  ``frames = 1 + samples // hop`` as librosa/torch ``center=True``. ``window`` has length ``n_fft``.
  """
  padded = jnp.pad(waveform, ((0, 0), (n_fft // 2, n_fft // 2)), mode="reflect")
  frames = frame(padded, n_fft, hop) * jnp.asarray(window, jnp.float32)
  spectrum = jnp.fft.rfft(frames, n=n_fft, axis=-1)
  return jnp.square(spectrum.real) + jnp.square(spectrum.imag)


def power_to_db(power: jax.Array) -> jax.Array:
  """``10 log10(max(x, 1e-10))`` with reference 1 and no top-dB clipping (librosa/torchlibrosa)."""
  return 10.0 * jnp.log10(jnp.maximum(power, DB_FLOOR))


def clips_per_step() -> int | None:
  """How many clips a memory-bound pass over a batch processes at once; None for all at once.

  On CPU the STFT of a whole batch is memory-bound (64 five-second clips make ~130 MB of frames and
  as much of spectrum): four clips at a time keep the intermediates in cache and ran 3-5x faster
  here; the MobileNet's depthwise kernel gradients gain the same way. Accelerators want the whole
  batch in one kernel.
  """
  return 4 if jax.default_backend() == "cpu" else None


def map_over_clips(function, *arrays: jax.Array):
  """``function`` (``[batch, ...] x len(arrays) -> [batch, ...]``) applied in steps of
  ``clips_per_step()`` clips; the arrays share their leading (batch) axis."""
  step = clips_per_step()
  if step is None or arrays[0].shape[0] <= step:
    return function(*arrays)
  return jax.lax.map(lambda clips: jax.tree.map(lambda out: out[0],
                                                function(*(clip[None] for clip in clips))),
                     arrays, batch_size=step)


def pad_or_cut(waveform: jax.Array, length: int) -> jax.Array:
  """``[batch, samples]`` -> ``[batch, length]``, zero-padded at the end or truncated."""
  samples = waveform.shape[-1]
  if samples >= length:
    return waveform[..., :length]
  return jnp.pad(waveform, ((0, 0), (0, length - samples)))


# --- 1. TFNet repository (CNN10, TFNet) -------------------------------------------------------
TFNET_SAMPLE_RATE = 44100
TFNET_N_FFT = 1764
TFNET_HOP = 882
TFNET_MELS = 40
TFNET_BAND = (50.0, 11025.0)
TFNET_CLIP_SAMPLES = 220500
TFNET_FRAMES = 250


@jax.jit
def tfnet_logmel(waveform: jax.Array) -> jax.Array:
  """TFNet repo ``LogMelExtractor``: ``[batch, samples]`` at 44.1 kHz -> ``[batch, 1 + samples//882, 40]`` dB.

  Symmetric ``np.hanning(1764)`` (not periodic Hann: they differ by up to 0.14 dB), reflect padding,
  Slaney mel 50-11025 Hz.
  """
  mel_bank = filterbanks.slaney_mel(TFNET_SAMPLE_RATE, TFNET_N_FFT, TFNET_MELS, *TFNET_BAND)
  window = filterbanks.hann(TFNET_N_FFT, symmetric=True)
  return map_over_clips(
      lambda clips: power_to_db(power_spectrogram(clips, TFNET_N_FFT, TFNET_HOP, window) @ mel_bank),
      waveform.astype(jnp.float32))


def min_max_normalise(features: jax.Array) -> jax.Array:
  """Per-clip ``(x - min) / (max - min)`` over all but the batch axis.

  Upstream divides 0 by 0 for a constant clip (silence) and yields NaN; here such a clip maps to 0.
  """
  axes = tuple(range(1, features.ndim))
  low = jnp.min(features, axis=axes, keepdims=True)
  span = jnp.max(features, axis=axes, keepdims=True) - low
  safe_span = jnp.where(span > 0, span, 1.0)
  return jnp.where(span > 0, (features - low) / safe_span, 0.0)


@jax.jit
def tfnet_input(waveform: jax.Array) -> jax.Array:
  """The TFNet repo's model input: ``[batch, samples]`` at 44.1 kHz -> ``[batch, 250, 40]`` in [0, 1].

  Pads or cuts to 5 s (220500 samples), keeps the first 250 of 251 frames (the models hard-code
  250x40) and min-max normalises each clip.
  """
  logmel = tfnet_logmel(pad_or_cut(waveform, TFNET_CLIP_SAMPLES))
  return min_max_normalise(logmel[:, :TFNET_FRAMES])


# --- 2. torchlibrosa (PANNs CNN10, HTS-AT) -------------------------------------------------------
@functools.partial(jax.jit, static_argnames=("sample_rate", "n_fft", "hop", "n_mels", "fmin",
                                             "fmax"))
def torchlibrosa_logmel(waveform: jax.Array, *, sample_rate: int = 32000, n_fft: int = 1024,
                        hop: int = 320, n_mels: int = 64, fmin: float = 50.0,
                        fmax: float = 14000.0) -> jax.Array:
  """torchlibrosa ``Spectrogram`` + ``LogmelFilterBank``: ``[batch, samples]`` -> ``[batch, 1 + samples//hop, n_mels]`` dB.

  Periodic Hann, reflect padding, Slaney mel. torchlibrosa computes the DFT as a convolution; an
  rfft gives the same power up to float32 round-off.
  """
  mel_bank = filterbanks.slaney_mel(sample_rate, n_fft, n_mels, fmin, fmax)
  window = filterbanks.hann(n_fft, symmetric=False)
  return map_over_clips(
      lambda clips: power_to_db(power_spectrogram(clips, n_fft, hop, window) @ mel_bank),
      waveform.astype(jnp.float32))


# --- 3. EfficientAT (MobileNetV3 "mn") ---------------------------------------------------------
EFFICIENTAT_PREEMPHASIS = 0.97
EFFICIENTAT_LOG_OFFSET = 1e-5


def preemphasis(waveform: jax.Array, coefficient: float = EFFICIENTAT_PREEMPHASIS) -> jax.Array:
  """``y[n] = x[n+1] - c x[n]``: ``[batch, samples]`` -> ``[batch, samples - 1]`` (no padding, as upstream)."""
  return waveform[:, 1:] - coefficient * waveform[:, :-1]


@functools.partial(jax.jit, static_argnames=("sample_rate", "n_fft", "win_length", "hop",
                                             "n_mels", "fmin", "fmax"))
def efficientat_logmel(waveform: jax.Array, *, sample_rate: int = 32000, n_fft: int = 1024,
                       win_length: int = 800, hop: int = 320, n_mels: int = 128,
                       fmin: float = 0.0, fmax: float = 15000.0) -> jax.Array:
  """EfficientAT ``AugmentMelSTFT`` in eval mode: ``[batch, samples]`` -> ``[batch, 1 + (samples-1)//hop, n_mels]``.

  Pre-emphasis, symmetric Hann of ``win_length`` centred in ``n_fft``, reflect padding, Kaldi mel
  bank, ``(log(mel + 1e-5) + 4.5) / 5``. For the training-time augmentation see
  ``efficientat_logmel_augmented``.
  """
  mel_bank = filterbanks.kaldi_mel(sample_rate, n_fft, n_mels, fmin, fmax)
  return _efficientat_from_bank(waveform, mel_bank, n_fft, win_length, hop)


def _efficientat_from_bank(waveform, mel_bank, n_fft, win_length, hop):
  if waveform.shape[-1] < 2:
    raise ValueError(f"the EfficientAT frontend needs at least 2 samples per clip (pre-emphasis "
                     f"shortens the clip by one), got waveform of shape {waveform.shape}")
  window = filterbanks.centre_pad(filterbanks.hann(win_length, symmetric=True), n_fft)

  def logmel(clips):
    power = power_spectrogram(preemphasis(clips), n_fft, hop, window)
    return (jnp.log(power @ mel_bank + EFFICIENTAT_LOG_OFFSET) + 4.5) / 5.0

  return map_over_clips(logmel, waveform.astype(jnp.float32))


def efficientat_logmel_augmented(waveform: jax.Array, rng: jax.Array, *, sample_rate: int = 32000,
                                 n_fft: int = 1024, win_length: int = 800, hop: int = 320,
                                 n_mels: int = 128, fmin: float = 0.0, fmax: float = 15000.0,
                                 fmin_range: int = 10, fmax_range: int = 2000) -> jax.Array:
  """EfficientAT's training frontend: the mel band edges jitter once per batch.

  As upstream, ``fmin + randint(fmin_range)`` and ``fmax + fmax_range/2 - randint(fmax_range)``;
  frequency/time masking is the training loop's (``jaxnoise.train.augment``). Off in eval.
  """
  low_key, high_key = jax.random.split(rng)
  low = fmin + jax.random.randint(low_key, (), 0, fmin_range).astype(jnp.float32)
  high = (fmax + fmax_range // 2
          - jax.random.randint(high_key, (), 0, fmax_range).astype(jnp.float32))
  mel_bank = filterbanks.kaldi_mel(sample_rate, n_fft, n_mels, low, high, xp=jnp)
  return _efficientat_from_bank(waveform, mel_bank, n_fft, win_length, hop)


# --- 4. Kaldi fbank (torchaudio.compliance.kaldi.fbank; BEATs) ---------------------------------
KALDI_FRAME_LENGTH = 400  # 25 ms at 16 kHz
KALDI_HOP = 160  # 10 ms
KALDI_N_FFT = 512  # the frame length rounded up to a power of two
KALDI_PREEMPHASIS = 0.97
KALDI_FMIN = 20.0
# Kaldi floors the mel energies at float32's machine epsilon (in any precision).
KALDI_LOG_FLOOR = float(np.finfo(np.float32).eps)
BEATS_SAMPLE_RATE = 16000
BEATS_MELS = 128
# BEATs feeds 16-bit-scaled audio to the fbank and normalises with its AudioSet statistics; the
# divisor is twice the std, as upstream's preprocess.
BEATS_INPUT_SCALE = 2.0 ** 15
BEATS_FBANK_MEAN = 15.41663
BEATS_FBANK_STD = 6.55582


@functools.partial(jax.jit, static_argnames=("sample_rate", "n_mels", "fmin"))
def kaldi_fbank(waveform: jax.Array, *, sample_rate: int = BEATS_SAMPLE_RATE,
                n_mels: int = BEATS_MELS, fmin: float = KALDI_FMIN) -> jax.Array:
  """Kaldi log-mel fbank: ``[batch, samples]`` -> ``[batch, 1 + (samples - 400) // 160, n_mels]``.

  torchaudio's defaults with dither 0: 25-ms frames every 10 ms that fit completely (no padding),
  per frame DC removal, pre-emphasis 0.97 and the povey window, a 512-point power spectrum, the
  Kaldi mel bank from ``fmin`` to Nyquist, and ``ln(max(energy, eps))``.
  """
  samples = waveform.shape[-1]
  if samples < KALDI_FRAME_LENGTH:
    raise ValueError(f"the Kaldi fbank needs at least {KALDI_FRAME_LENGTH} samples per clip (one "
                     f"25-ms frame), got waveform of shape {waveform.shape}")
  mel_bank = filterbanks.kaldi_mel(sample_rate, KALDI_N_FFT, n_mels, fmin, sample_rate / 2)
  window = jnp.asarray(filterbanks.povey(KALDI_FRAME_LENGTH), jnp.float32)

  def fbank(clips):
    frames = frame(clips, KALDI_FRAME_LENGTH, KALDI_HOP)
    frames = frames - jnp.mean(frames, axis=-1, keepdims=True)
    # Kaldi pre-emphasises inside each frame, its first sample against itself (unlike
    # ``preemphasis`` above, which runs over the whole clip and drops a sample).
    previous = jnp.concatenate([frames[..., :1], frames[..., :-1]], axis=-1)
    frames = (frames - KALDI_PREEMPHASIS * previous) * window
    spectrum = jnp.fft.rfft(frames, n=KALDI_N_FFT, axis=-1)
    power = jnp.square(spectrum.real) + jnp.square(spectrum.imag)
    return jnp.log(jnp.maximum(power @ mel_bank, KALDI_LOG_FLOOR))

  return map_over_clips(fbank, waveform.astype(jnp.float32))


@jax.jit
def beats_fbank(waveform: jax.Array) -> jax.Array:
  """BEATs' ``preprocess``: ``[batch, samples]`` at 16 kHz in [-1, 1] -> ``[batch, frames, 128]``.

  The waveform is scaled by 2^15 (upstream's fbank takes 16-bit sample values), then normalised
  with the published fbank mean and twice the std.
  """
  fbank = kaldi_fbank(waveform.astype(jnp.float32) * BEATS_INPUT_SCALE)
  return (fbank - BEATS_FBANK_MEAN) / (2.0 * BEATS_FBANK_STD)
