"""Where a CNN's training step goes on XLA:CPU: a 3x3 convolution and its two gradients, GFLOP/s.

For the 3x3 convolutions of CNN10 / TFNet (time on the inner axis, ``[batch, mel, time, channels]``,
stride 1, padding 1) at --batch clips, each of the three products a training step computes is timed
on its own: the forward convolution, the input gradient and the kernel gradient (both from
``jax.vjp`` of ``lax.conv_general_dilated``, what autodiff of the models runs). All three do the same
arithmetic, ``2 x batch x mel x time x in x out x 9`` FLOPs, so their GFLOP/s compare directly, also
with the float32 matmul peak measured in the same run. The last column is the kernel gradient the
models run, ``jaxnoise.models.layers.convolve_same_3x3``'s (shifted per-clip products on large
maps, XLA's on small ones). Timings are printed, never asserted.

  python benchmarks/conv_gradients.py [--batch 16] [--repeats 3]
"""
import argparse
import pathlib
import sys
import time

import jax
import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from benchmarks.sweep import matmul_peak  # pylint: disable=wrong-import-position
from jaxnoise.models import layers  # pylint: disable=wrong-import-position

# (mel, time, in, out) at 5 s, 40 mels: CNN10's first convolution, then the second of each block.
LAYERS = ((40, 250, 1, 64), (40, 250, 64, 64), (20, 125, 128, 128), (10, 62, 256, 256),
          (5, 31, 512, 512))


def convolution(inputs, kernel):
  return jax.lax.conv_general_dilated(inputs, kernel, (1, 1), ((1, 1), (1, 1)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def best_seconds(function, arguments, repeats: int) -> float:
  jax.block_until_ready(function(*arguments))  # compile
  best = float("inf")
  for _ in range(repeats):
    started = time.perf_counter()
    jax.block_until_ready(function(*arguments))
    best = min(best, time.perf_counter() - started)
  return best


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  products = {
      "forward": jax.jit(convolution),
      "input gradient": jax.jit(lambda x, k, g: jax.vjp(lambda x: convolution(x, k), x)[1](g)[0]),
      "kernel gradient": jax.jit(lambda x, k, g: jax.vjp(lambda k: convolution(x, k), k)[1](g)[0]),
      "jaxnoise kernel": jax.jit(
          lambda x, k, g: jax.vjp(lambda k: layers.convolve_same_3x3(x, k), k)[1](g)[0]),
  }
  matmul, matmul_flops = matmul_peak()
  peak = matmul_flops / best_seconds(matmul, (), args.repeats)
  print(f"\n3x3 convolutions of CNN10, batch {args.batch}, {jax.devices()[0].platform}; float32 "
        f"matmul peak in this run {peak / 1e9:.0f} GFLOP/s")
  print(f"  {'mel x time, in -> out':<26}" + "".join(f"{name:>18}" for name in products))
  for mel, frames, in_channels, out_channels in LAYERS:
    inputs = rng.normal(size=(args.batch, mel, frames, in_channels)).astype(np.float32)
    kernel = (rng.normal(size=(3, 3, in_channels, out_channels)) * 0.05).astype(np.float32)
    grad = rng.normal(size=(args.batch, mel, frames, out_channels)).astype(np.float32)
    flops = 2 * args.batch * mel * frames * in_channels * out_channels * 9
    cells = []
    for name, function in products.items():
      arguments = (inputs, kernel) if name == "forward" else (inputs, kernel, grad)
      cells.append(f"{flops / best_seconds(function, arguments, args.repeats) / 1e9:13.0f} GF/s")
    print(f"  {f'{mel} x {frames}, {in_channels} -> {out_channels}':<26}" + "".join(
        f"{cell:>18}" for cell in cells))


if __name__ == "__main__":
  main()
