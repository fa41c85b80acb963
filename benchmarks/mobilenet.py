"""Clips/s of the mn forward pass: shifted-products depthwise convs against ``feature_group_count``.

The same network and variables run with ``conv_algorithm='shifted'`` (the default: depthwise k x k
as k^2 shifted per-channel products, 1x1 as a matmul) and ``'feature_group_count'`` (everything
through ``lax.conv_general_dilated``), jitted, eval mode, on a batch of 5-second log-mels; timed
interleaved and the ratio printed (never asserted: the machine is shared). docs/PERFORMANCE.md
measured the shifted form 11x faster for mn04 and 4.4x for mn40 on this kind of CPU.

  python benchmarks/mobilenet.py [--width 0.4] [--batch 4] [--repeats 5]
"""
import argparse
import pathlib
import sys

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from benchmarks import common  # pylint: disable=wrong-import-position
from jaxnoise.models import mobilenet, registry  # pylint: disable=wrong-import-position

FRAMES = 500  # 5 s at 32 kHz, hop 320
MELS = 128


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--width", type=float, default=0.4, help="0.4 = mn04, 4.0 = mn40")
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()

  spec = registry.build_spec("mn", {"width": args.width, "num_classes": 527})
  variables = jax.device_put(mobilenet.random_variables(spec))
  features = jax.device_put(
      np.random.default_rng(1).standard_normal((args.batch, FRAMES, MELS)).astype(np.float32))
  functions = {}
  logits = {}
  for algorithm in ("shifted", "feature_group_count"):
    forward = jax.jit(spec.network.clone(conv_algorithm=algorithm).apply)
    logits[algorithm] = np.asarray(forward(variables, features)["logits"])
    functions[algorithm] = (lambda f=forward: jax.block_until_ready(f(variables, features)))
  difference = np.max(np.abs(logits["shifted"] - logits["feature_group_count"])) / np.max(
      np.abs(logits["feature_group_count"]))
  best = common.interleaved_best(functions, repeats=args.repeats)
  common.print_table(
      f"mn width {args.width}, batch {args.batch}, {FRAMES}x{MELS} log-mel, forward only "
      f"({jax.devices()[0].platform}); logits differ by {difference:.1e} of their max",
      [(name, seconds) for name, seconds in best.items()], baseline="feature_group_count",
      units=args.batch)


if __name__ == "__main__":
  main()
