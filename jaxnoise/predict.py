"""python -m jaxnoise.predict --checkpoint DIR FILE_OR_DIR... [--top-k 5] [--json]

Tags audio files with any converted or trained jaxnoise model (the architecture comes from the
model directory's config.json): prints the top-k class names with their scores, or with ``--json``
one JSON object per file and line holding every class score and the top-k indices and names.

Each file is read as mono at the model's sample rate and zero-padded or cut to the model's clip
length (``clip_seconds`` in its config: 5 s for the ESC-50 models and EfficientAT, whose ESC-50
fine-tuning pads or cuts the same way). So a longer file is judged on its first clip, exactly the
input the study evaluates, and every file runs through one compiled function. (EfficientAT's own
inference.py instead feeds a whole file of any length.)
"""
import argparse
import json
import sys

import jax
import numpy as np

from jaxnoise import cli
from jaxnoise.audio import io as audio_io
from jaxnoise.errors import ConfigError
from jaxnoise.models import store

# Clips per compiled call; a shorter last batch is zero-padded so that nothing recompiles.
BATCH_SIZE = 8


def load_clips(spec, paths) -> np.ndarray:
  """``[files, spec.clip_samples]`` float32: mono files at ``spec.sample_rate``, padded or cut."""
  return np.stack([audio_io.load_audio(path, spec.sample_rate, length=spec.clip_samples)[0]
                   for path in paths])


def predict_scores(spec, variables, waveforms: np.ndarray, batch_size: int = BATCH_SIZE):
  """Scores (softmax or sigmoid, as the head was trained) ``[files, classes]`` of ``waveforms``."""
  score = jax.jit(lambda v, clips: spec.scores(spec.apply(v, clips)["logits"]))
  batch_size = min(batch_size, len(waveforms))
  scores = []
  for start in range(0, len(waveforms), batch_size):
    batch = waveforms[start:start + batch_size]
    padding = batch_size - len(batch)
    padded = np.pad(batch, ((0, padding), (0, 0)))
    scores.append(np.asarray(score(variables, padded))[:len(batch)])
  return np.concatenate(scores)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
  """Indices of the ``k`` highest scores per row, highest first; ties go to the lower index."""
  return np.argsort(-scores, axis=-1, kind="stable")[..., :k]


def parse_args(argv):
  parser = argparse.ArgumentParser(prog="python -m jaxnoise.predict", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--checkpoint", required=True,
                      help="model directory written by `python -m jaxnoise.convert` or training")
  parser.add_argument("files", nargs="+", metavar="FILE",
                      help="audio files, or folders searched for audio files")
  parser.add_argument("--top-k", type=int, default=5, help="classes to show per file (default 5)")
  parser.add_argument("--json", action="store_true",
                      help="one JSON object per file and line, with every class score")
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  if args.top_k < 1:
    raise ConfigError(f"--top-k must be at least 1, got {args.top_k}")
  paths = audio_io.list_audio_files(args.files)
  spec, variables = store.load_model(args.checkpoint)
  scores = predict_scores(spec, variables, load_clips(spec, paths))
  best = top_k(scores, min(args.top_k, spec.num_classes))
  for path, row, indices in zip(paths, scores, best):
    if args.json:
      print(json.dumps({
          "file": str(path),
          "top_indices": indices.tolist(),
          "top_labels": [spec.labels[index] for index in indices],
          "top_scores": [float(row[index]) for index in indices],
          "output_activation": spec.output_activation,
          "scores": [float(value) for value in row],
      }))
    else:
      print(path)
      for index in indices:
        print(f"  {row[index]:.3f}  {spec.labels[index]}")
  return 0


if __name__ == "__main__":
  sys.exit(cli.run_main(main))
