"""python -m jaxnoise.convert --arch ARCH --src CHECKPOINT --out DIR

Converts an upstream PyTorch checkpoint into a jaxnoise model directory (orbax variables plus
config.json). Every upstream key is mapped and shape-checked; anything that does not fit is listed.
"""
import argparse
import sys

from jaxnoise import cli


def parse_args(argv):
  parser = argparse.ArgumentParser(prog="python -m jaxnoise.convert", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--arch", required=True,
                      choices=["cnn10", "tfnet", "panns_cnn10", "mn", "htsat", "beats"])
  parser.add_argument("--src", required=True, help="upstream checkpoint (.pt, .pth, .ckpt)")
  parser.add_argument("--out", required=True, help="output model directory (replaced)")
  parser.add_argument("--allow-head-mismatch", action="store_true",
                      help="start a fresh classifier head where its shape differs (fine-tuning "
                           "to another class count); every other key must still fit")
  parser.add_argument("--num-classes", type=int, help="class count of the converted head")
  parser.add_argument("--width", type=float, help="mn width multiplier (inferred if omitted)")
  parser.add_argument("--config", default=None,
                      help="JSON object of further architecture config overrides")
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  from jaxnoise import convert  # pylint: disable=import-outside-toplevel
  overrides = cli.architecture_overrides(args.config, args.num_classes)
  if args.width is not None:
    overrides["width"] = args.width
  out = convert.convert_to_directory(args.arch, args.src, args.out, config_overrides=overrides,
                                     allow_head_mismatch=args.allow_head_mismatch)
  print(f"wrote {out}")
  return 0


if __name__ == "__main__":
  sys.exit(cli.run_main(main))
