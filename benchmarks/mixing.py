"""Clips/s of the jitted band power + mixing against the study's scipy periodogram loop.

The work: 64 five-second clips at 44.1 kHz (real ESC-50 clips when ../shared is present), one pink
noise, band (50, 11025) Hz, three SNRs: the in-band power of every clip and of the noise, the gains,
and every noisy clip ``[clips, 1, snrs, samples]``. The scipy baseline does the same clip by clip in
float64 (``scipy.signal.periodogram`` + ``trapezoid``, as the study), writing into one output array.
Both are timed interleaved in one run (best of --repeats); band power alone is timed too.
Goal on the 2-core CI CPU: band power + mixing >= 5x the scipy loop. Timings are printed, never
asserted.

  python benchmarks/mixing.py [--clips 64] [--snrs -10 0 10] [--repeats 5]
"""
import argparse
import pathlib
import sys

import jax
import numpy as np
import scipy.integrate
import scipy.signal

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from benchmarks import common  # pylint: disable=wrong-import-position
from benchmarks.frontend import load_clips  # pylint: disable=wrong-import-position
from jaxnoise import noise  # pylint: disable=wrong-import-position

SAMPLE_RATE = 44100
BAND = (50.0, 11025.0)


def scipy_band_power(waveform: np.ndarray) -> float:
  """The study's band power of one clip, float64."""
  frequencies, density = scipy.signal.periodogram(waveform, SAMPLE_RATE)
  ind_min = np.argmax(frequencies > BAND[0]) - 1
  ind_max = np.argmax(frequencies > BAND[1]) - 1
  return scipy.integrate.trapezoid(density[ind_min:ind_max], frequencies[ind_min:ind_max])


def scipy_mix(clips: np.ndarray, pink: np.ndarray, snrs: np.ndarray, out: np.ndarray):
  """The study's loop: per clip, its power, then one mix per SNR (float64)."""
  noise_power = scipy_band_power(pink)
  for index, clip in enumerate(clips.astype(np.float64)):
    gains = np.sqrt(scipy_band_power(clip) * 10 ** (-snrs / 10) / noise_power)
    out[index, 0] = clip + gains[:, None] * pink[None]
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--clips", type=int, default=64)
  parser.add_argument("--snrs", type=float, nargs="+", default=[-10.0, 0.0, 10.0])
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()

  clips = load_clips(args.clips, SAMPLE_RATE)
  snrs = np.asarray(args.snrs)
  pink = noise.colored_noise(jax.random.key(0), clips.shape[1], "pink")
  pink64 = np.asarray(pink, np.float64)
  device_clips = jax.device_put(clips)
  device_noises = pink[None]
  device_snrs = jax.device_put(snrs.astype(np.float32))
  scipy_out = np.empty((len(clips), 1, len(snrs), clips.shape[1]))

  def jax_power():
    noise.band_power(device_clips, SAMPLE_RATE, BAND).block_until_ready()

  def jax_mix():
    noise.mix(device_clips, device_noises, device_snrs, SAMPLE_RATE, BAND).noisy.block_until_ready()

  def scipy_power():
    [scipy_band_power(clip) for clip in clips.astype(np.float64)]

  # Same result first: the gains the two compute agree (float32 vs float64 band power).
  result = noise.mix(device_clips, device_noises, device_snrs, SAMPLE_RATE, BAND)
  scipy_mix(clips, pink64, snrs, scipy_out)
  jax_noisy = np.asarray(result.noisy, np.float64)
  print(f"{len(clips)} clips of {clips.shape[1] / SAMPLE_RATE:g} s at {SAMPLE_RATE} Hz, band "
        f"{BAND}, SNRs {snrs.tolist()}; {jax.devices()[0].platform} backend")
  print(f"max |JAX - scipy| noisy sample: {np.max(np.abs(jax_noisy - scipy_out)):.2e}")
  del jax_noisy, result

  best = common.interleaved_best({
      "scipy periodogram loop (float64)": scipy_power,
      "jaxnoise.band_power (jit, float32)": jax_power,
  }, repeats=args.repeats)
  common.print_table("band power", list(best.items()), "scipy periodogram loop (float64)",
                     len(clips))
  best = common.interleaved_best({
      "scipy periodogram loop + mix (float64)": lambda: scipy_mix(clips, pink64, snrs, scipy_out),
      "jaxnoise.mix (jit, float32)": jax_mix,
  }, repeats=args.repeats)
  common.print_table("band power + mixing", list(best.items()),
                     "scipy periodogram loop + mix (float64)", len(clips))


if __name__ == "__main__":
  main()
