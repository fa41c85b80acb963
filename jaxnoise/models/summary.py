"""python -m jaxnoise.models.summary ARCH [--num-classes N] [--config JSON]

Prints the variable counts of any registered model family, from shapes alone (nothing is
computed): trainable parameters (the 'params' collection), BatchNorm running statistics
('batch_stats'), any other collection, and the total over all collections.

Upstream PyTorch counts differ in what they include: layers defined but never called in forward
(the TFNet repository's ``fc2`` etc.) and frozen frontend tensors (PANNs' DFT kernels and mel
matrix) do not exist here, and PyTorch keeps BatchNorm statistics as buffers, with a step counter
per layer. Compare 'trainable' with upstream's trainable parameters used in forward.
"""
import argparse
import math
import sys

import jax

from jaxnoise import cli
from jaxnoise.models import registry

TRAINABLE_COLLECTION = "params"


def count_variables(spec) -> dict:
  """``{collection: element count}`` of ``spec``'s variables, computed with ``jax.eval_shape``."""
  shapes = jax.eval_shape(spec.init, jax.random.key(0))
  return {collection: sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))
          for collection, tree in shapes.items()}


def summarise(spec) -> dict:
  """Counts keyed 'trainable', 'batch_stats', 'total' and one entry per other collection."""
  counts = count_variables(spec)
  summary = {"trainable": counts.get(TRAINABLE_COLLECTION, 0),
             "batch_stats": counts.get("batch_stats", 0)}
  for collection in sorted(set(counts) - {TRAINABLE_COLLECTION, "batch_stats"}):
    summary[collection] = counts[collection]
  summary["total"] = sum(counts.values())
  return summary


def parse_args(argv):
  parser = argparse.ArgumentParser(prog="python -m jaxnoise.models.summary", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("arch", choices=sorted(registry.FAMILY_MODULES))
  parser.add_argument("--num-classes", type=int, help="class count of the head")
  parser.add_argument("--config", help="JSON object of architecture config overrides")
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  overrides = cli.architecture_overrides(args.config, args.num_classes)
  spec = registry.build_spec(args.arch, overrides)
  print(f"{args.arch}: {spec.num_classes} classes, {spec.sample_rate} Hz, "
        f"{spec.clip_seconds:g} s clips")
  for name, count in summarise(spec).items():
    print(f"  {name:<12} {count:>14,}")
  return 0


if __name__ == "__main__":
  sys.exit(cli.run_main(main))
