"""Clips x SNRs per second: the study's way against jaxnoise's sweep, same model, clips, noises, SNRs.

(a) the study's way: for each SNR, each clip is mixed with the noise in numpy (scipy periodogram band
    powers, float64) and written as a float WAV; then every file is read back, run through the
    jitted frontend + network one clip at a time, and classified.
(b) jaxnoise's sweep: ``SweepEngine.run``: gains, mixing, frontend, network and decision in one
    jitted call per chunk of clips, vmapped over the SNRs (the clips already on the device).
Both run interleaved in one process (best of --repeats rounds). Also printed: FLOPs per clip from
XLA's cost analysis, the machine's float32 matmul peak measured in the same run, and the FLOP/s the
sweep achieves as a share of that peak. Timings are printed, never asserted.

  python benchmarks/sweep.py --model mn04 [--clips 16] [--study-clips 4] [--repeats 2]
  models: mn04 (the real mn04_as when ../shared is present), mn40, cnn10, tfnet, htsat,
  panns_cnn10, beats (random weights of the published shapes: speed does not depend on the values)
"""
import argparse
import pathlib
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import scipy.integrate
import scipy.signal
import soundfile

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from benchmarks.frontend import load_clips  # pylint: disable=wrong-import-position
from jaxnoise.data import esc50  # pylint: disable=wrong-import-position
from jaxnoise.models import mobilenet, registry, store  # pylint: disable=wrong-import-position
from jaxnoise.noise import colored_noise  # pylint: disable=wrong-import-position
from jaxnoise.report import tables  # pylint: disable=wrong-import-position
from jaxnoise.runtime import distributed  # pylint: disable=wrong-import-position
from jaxnoise.sweep import engine as engine_lib  # pylint: disable=wrong-import-position
from jaxnoise.data import noises as noise_lib  # pylint: disable=wrong-import-position
from jaxnoise.sweep import readout as readout_lib  # pylint: disable=wrong-import-position
from jaxnoise.sweep import run as sweep_run  # pylint: disable=wrong-import-position
from jaxnoise.sweep import sharding  # pylint: disable=wrong-import-position

MN04_CHECKPOINT = REPO_ROOT.parent / "shared" / "golden" / "mn" / "mn04_as_mAP_432.pt"
ESC19_TARGETS = esc50.class_targets("esc19", "clock_tick")
ESC19_NAMES = tuple(esc50.CLASS_NAMES[t] for t in ESC19_TARGETS)
PRESETS = {  # name: (arch, config overrides)
    "mn04": ("mn", {"width": 0.4}),
    "mn40": ("mn", {"width": 4.0}),
    "cnn10": ("cnn10", {"labels": list(ESC19_NAMES)}),
    "tfnet": ("tfnet", {"labels": list(ESC19_NAMES)}),
    "htsat": ("htsat", {}),
    "beats": ("beats", {}),
    "panns_cnn10": ("panns_cnn10", {}),
}


def build_model(name: str):
  """``(spec, variables, description)``: the real mn04_as if available, else random weights."""
  if name == "mn04" and MN04_CHECKPOINT.is_file():
    try:
      from jaxnoise import convert  # pylint: disable=import-outside-toplevel
      spec, variables = convert.convert_checkpoint("mn", MN04_CHECKPOINT)
      return spec, variables, "real mn04_as weights"
    except Exception as error:  # pylint: disable=broad-except  (torch missing: random weights)
      print(f"(cannot convert {MN04_CHECKPOINT}: {error}; using random weights)")
  arch, overrides = PRESETS[name]
  spec = registry.build_spec(arch, overrides)
  if arch == "mn":
    variables = mobilenet.random_variables(spec)
  else:
    variables = jax.jit(spec.init)(jax.random.key(0))
  return spec, variables, "random weights"


def study_band_power(waveform: np.ndarray, sample_rate: int, band) -> float:
  """The study's band power of one signal (scipy, float64)."""
  frequencies, density = scipy.signal.periodogram(waveform, sample_rate)
  low, high = np.argmax(frequencies > band[0]) - 1, np.argmax(frequencies > band[1]) - 1
  return scipy.integrate.trapezoid(density[low:high], frequencies[low:high])


def study_way(spec, classify, variables, clips, noises, snrs, folder) -> np.ndarray:
  """(a): per SNR, mix and write every clip, then read back and classify one at a time."""
  predictions = []
  for noise in noises:
    noise = noise.astype(np.float64)
    noise_power = study_band_power(noise, spec.sample_rate, spec.band)
    for snr in snrs:
      paths = []
      for index, clip in enumerate(clips.astype(np.float64)):
        clip_power = study_band_power(clip, spec.sample_rate, spec.band)
        gain = np.sqrt(clip_power * 10 ** (-snr / 10) / noise_power)
        path = folder / f"{index}_{snr:g}.wav"
        soundfile.write(path, clip + gain * noise, spec.sample_rate, subtype="FLOAT")
        paths.append(path)
      for path in paths:
        waveform, _ = soundfile.read(path, dtype="float32")
        predictions.append(int(classify(variables, waveform[None])))
  return np.asarray(predictions)


def matmul_peak(size: int = 4096):
  """A function timing one jitted float32 ``size``-cubed matmul, and its FLOPs."""
  a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
  product = jax.jit(jnp.dot)
  return (lambda: product(a, b).block_until_ready()), 2 * size ** 3


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--model", choices=sorted(PRESETS), default="mn04")
  parser.add_argument("--clips", type=int, default=16, help="clips in the jaxnoise sweep")
  parser.add_argument("--study-clips", type=int, default=4,
                      help="clips in the study's way (its rate per clip x SNR is what counts)")
  parser.add_argument("--snrs", type=float, nargs="+",
                      default=[-30, -25, -20, -15, -10, -5, 0, 5, 10, 15, 20, 25, 30])
  parser.add_argument("--noises", nargs="+", default=["white", "pink"])
  parser.add_argument("--chunk", type=int, default=8, help="config.sweep.chunk_clips")
  parser.add_argument("--snr-batch", type=int, default=-1,
                      help="config.sweep.snr_batch (-1: automatic, 0: all SNRs in one call)")
  parser.add_argument("--repeats", type=int, default=2)
  args = parser.parse_args()

  spec, variables, weights = build_model(args.model)
  readout = readout_lib.make_readout(spec.labels, ESC19_NAMES, ESC19_TARGETS)
  clips = load_clips(args.clips, spec.sample_rate)
  length = clips.shape[1]
  noises = [np.asarray(colored_noise(jax.random.key(0), length, name)) for name in args.noises]
  snrs = tuple(float(snr) for snr in args.snrs)

  classify = jax.jit(lambda v, x: jnp.argmax(readout.class_scores(spec.scores(
      spec.apply(v, engine_lib.model_input(spec, x))["logits"])), axis=-1)[0])
  mesh = sharding.make_mesh(len(snrs), 0, args.chunk)
  chunk = distributed.round_up(min(args.chunk, len(clips)), mesh.shape[sharding.CLIP_AXIS])
  snr_batch = sweep_run.snr_batch_for(args.snr_batch, jax.devices()[0].platform,
                                      chunk // mesh.shape[sharding.CLIP_AXIS])
  engine = engine_lib.SweepEngine(spec, readout, variables, clips, mesh, chunk_clips=chunk,
                                  snr_batch=snr_batch)
  maker = noise_lib.NoiseMaker(engine, [f"clip{i}" for i in range(len(clips))], 0, False)
  units = [noise_lib.Unit(noise_lib.NoiseType(name, color=name)) for name in args.noises]

  def jaxnoise_sweep():
    for unit in units:
      noise_for_chunk, per_clip = maker.for_unit(unit)
      engine.run(noise_for_chunk, snrs, per_clip_noise=per_clip)

  folder = pathlib.Path(tempfile.mkdtemp(prefix="jaxnoise-study-"))
  study_clips = clips[:args.study_clips]

  def the_study_way():
    study_way(spec, classify, variables, study_clips, noises, snrs, folder)

  matmul, matmul_flops = matmul_peak()
  runs = {"study's way (scipy, wav files, batch 1)": (the_study_way, len(study_clips)),
          "jaxnoise sweep (one jitted call per chunk)": (jaxnoise_sweep, len(clips)),
          "matmul": (matmul, 0)}
  for function, _ in runs.values():  # compile and warm up
    function()
  # Interleaved rounds, the peak included, so that load from other processes hits all alike.
  best = {name: float("inf") for name in runs}
  for _ in range(args.repeats):
    for name, (function, _) in runs.items():
      for _ in range(3 if name == "matmul" else 1):
        start = time.perf_counter()
        function()
        best[name] = min(best[name], time.perf_counter() - start)
  peak = matmul_flops / best.pop("matmul")
  runs.pop("matmul")
  flops = tables.complexity_row(args.model, spec, variables)["gflops_per_clip"] * 1e9

  mixes = {name: count * len(snrs) * len(noises) for name, (_, count) in runs.items()}
  rates = {name: mixes[name] / best[name] for name in runs}
  study, ours = list(runs)
  print(f"\n{args.model} ({spec.arch}, {weights}), {len(snrs)} SNRs x {len(noises)} noises, "
        f"{jax.devices()[0].platform} x {jax.device_count()}, mesh {dict(mesh.shape)}, "
        f"chunk {engine.chunk} clips, {snr_batch or 'all'} SNRs per network call")
  print(f"  FLOPs per clip (XLA cost analysis, frontend + network): {flops / 1e9:.3f} G")
  print(f"  matmul peak, measured in the same rounds (4096^3 float32): {peak / 1e9:.1f} GFLOP/s")
  print(f"  {'method':<46} {'clips x SNR/s':>14} {'x study':>8} {'GFLOP/s':>9} {'of peak':>8}")
  for name in runs:
    achieved = rates[name] * flops
    print(f"  {name:<46} {rates[name]:14.1f} {rates[name] / rates[study]:8.2f} "
          f"{achieved / 1e9:9.1f} {achieved / peak:8.1%}")
  print(f"  ratio jaxnoise / study's way: {rates[ours] / rates[study]:.2f}x")


if __name__ == "__main__":
  main()
