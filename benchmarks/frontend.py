"""Clips/s of the jitted log-mel frontends against librosa doing the same work.

A batch of 64 five-second clips (real ESC-50 clips when ../shared is present, else noise), each
frontend timed interleaved with librosa clip by clip and librosa on the whole batch; ratios printed.
Goal on the 2-core CI CPU: >= 3x librosa clip by clip and >= 1.5x librosa batched.

  python benchmarks/frontend.py [--clips 64] [--repeats 5]
"""
import argparse
import os
import pathlib
import sys

import jax
import jax.numpy as jnp
import librosa
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from benchmarks import common  # pylint: disable=wrong-import-position
from jaxnoise.audio import filterbanks, frontends  # pylint: disable=wrong-import-position
from jaxnoise.audio import io as audio_io  # pylint: disable=wrong-import-position


def load_clips(count: int, sample_rate: int) -> np.ndarray:
  """``[count, 5 s]`` float32: the shared ESC-50 clips (repeated as needed) or white noise."""
  audio_dir = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "esc50" / "audio"
  files = sorted(audio_dir.glob("*.wav"))[:count] if audio_dir.is_dir() else []
  length = 5 * sample_rate
  if not files:
    return np.random.default_rng(0).standard_normal((count, length)).astype(np.float32) * 0.1
  clips = [audio_io.load_audio(path, sample_rate, length=length)[0] for path in files]
  return np.stack([clips[i % len(clips)] for i in range(count)])


def librosa_tfnet(clips):
  mel = librosa.feature.melspectrogram(y=clips, sr=44100, n_fft=1764, hop_length=882,
                                       window=np.hanning(1764), center=True, pad_mode="reflect",
                                       n_mels=40, fmin=50, fmax=11025)
  return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)


def librosa_torchlibrosa(clips):
  mel = librosa.feature.melspectrogram(y=clips, sr=32000, n_fft=1024, hop_length=320,
                                       window="hann", center=True, pad_mode="reflect", n_mels=64,
                                       fmin=50, fmax=14000)
  return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)


KALDI_BANK = filterbanks.kaldi_mel(32000, 1024, 128, 0.0, 15000.0).T


def librosa_efficientat(clips):
  emphasised = clips[..., 1:] - 0.97 * clips[..., :-1]
  window = filterbanks.centre_pad(filterbanks.hann(800, symmetric=True), 1024)
  power = np.abs(librosa.stft(emphasised, n_fft=1024, hop_length=320, window=window,
                              center=True, pad_mode="reflect")) ** 2
  return (np.log(np.einsum("mf,...ft->...mt", KALDI_BANK, power) + 1e-5) + 4.5) / 5


CASES = (
    ("tfnet (44.1 kHz, 40 mels)", 44100, frontends.tfnet_logmel, librosa_tfnet),
    ("torchlibrosa (32 kHz, 64 mels)", 32000, frontends.torchlibrosa_logmel, librosa_torchlibrosa),
    ("efficientat (32 kHz, 128 mels)", 32000, frontends.efficientat_logmel, librosa_efficientat),
)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--clips", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}, librosa {librosa.__version__}, "
        f"{os.cpu_count()} CPUs, {args.clips} clips of 5 s")
  for title, rate, jax_frontend, librosa_frontend in CASES:
    clips = load_clips(args.clips, rate)
    on_device = jax.device_put(jnp.asarray(clips))
    timings = common.interleaved_best({
        "librosa, clip by clip": lambda: [librosa_frontend(clip) for clip in clips],
        "librosa, whole batch": lambda: librosa_frontend(clips),
        "jaxnoise jit, whole batch": lambda: jax_frontend(on_device).block_until_ready(),
        "jaxnoise jit, clip by clip": lambda: [
            jax_frontend(on_device[i:i + 1]).block_until_ready() for i in range(len(clips))],
    }, repeats=args.repeats)
    common.print_table(title, list(timings.items()), baseline="librosa, clip by clip",
                       units=args.clips)
    print(f"  jaxnoise batch / librosa batch: "
          f"{timings['librosa, whole batch'] / timings['jaxnoise jit, whole batch']:.2f}x")


if __name__ == "__main__":
  main()
