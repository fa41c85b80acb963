"""python -m jaxnoise.predict --checkpoint DIR FILE_OR_DIR... [--top-k 5] [--json]

Tags audio files with any converted or trained jaxnoise model (the architecture comes from the
model directory's config.json): prints the top-k class names with their scores, or with ``--json``
one JSON object per file and line holding every class score and the top-k indices and names.

Each file is read whole, as mono at the model's sample rate, as the upstream inference scripts do:
a file shorter than the model's clip length is zero-padded to it (HTS-AT instead repeats it, as
upstream), a longer one is kept whole (EfficientAT and PANNs pool over all of it, HTS-AT averages
overlapping 10-s windows, CNN10/TFNet read its first 5 s). ``--first-clip`` instead pads or cuts
every file to the model's clip length (``clip_seconds``: 5 s), the input the study evaluates and
the one EfficientAT's ESC-50 pipeline feeds. Files of equal length share one compiled call.

``--data SOURCE:ROOT`` adds the files of a labelled dataset (``jaxnoise.data.sources``), each
printed with its label. A truncated WAV (its header announces more audio than the file holds) or
an unreadable file stops the command naming it before anything is classified, or with
``--skip-bad-files`` is named on stderr and left out.
"""
import argparse
import json
import pathlib
import sys

import jax
import numpy as np

from jaxnoise import cli
from jaxnoise.audio import io as audio_io
from jaxnoise.data import sources
from jaxnoise.errors import AudioError, ConfigError
from jaxnoise.models import store

# Clips per compiled call; a shorter last batch is zero-padded so that nothing recompiles.
BATCH_SIZE = 8


def load_clips(spec, paths, first_clip: bool = False) -> list:
  """Mono float32 ``[samples]`` per file at ``spec.sample_rate``: whole (``spec.fit_file``), or
  padded/cut to ``spec.clip_samples`` with ``first_clip``."""
  if first_clip:
    return [audio_io.load_audio(path, spec.sample_rate, length=spec.clip_samples)[0]
            for path in paths]
  return [spec.fit_file(audio_io.load_audio(path, spec.sample_rate)[0]) for path in paths]


def readable(paths, labels, skip_bad_files: bool):
  """``(paths, labels)`` without the files whose header is bad (``check_audio_header``: unreadable,
  empty, a truncated WAV), each named on stderr, when ``skip_bad_files``; else the first such file
  is an AudioError before anything is classified."""
  kept = []
  for path, label in zip(paths, labels):
    try:
      audio_io.check_audio_header(path)
    except AudioError as error:
      if not skip_bad_files:
        raise
      print(f"warning: skipped {error}", file=sys.stderr)
      continue
    kept.append((path, label))
  return [p for p, _ in kept], [label for _, label in kept]


def predict_scores(spec, variables, waveforms, batch_size: int = BATCH_SIZE) -> np.ndarray:
  """Scores (softmax or sigmoid, as the head was trained) ``[files, classes]`` of ``waveforms``.

  ``waveforms`` is a list of ``[samples]`` arrays (or a ``[files, samples]`` array); files of one
  length run together in batches of ``batch_size``, the last batch zero-padded so nothing
  recompiles within a length.
  """
  score = jax.jit(lambda v, clips: spec.scores(spec.apply(v, clips)["logits"]))
  by_length = {}
  for index, waveform in enumerate(waveforms):
    by_length.setdefault(waveform.shape[-1], []).append(index)
  scores = np.zeros((len(waveforms), spec.num_classes), np.float32)
  for indices in by_length.values():
    group = np.stack([waveforms[index] for index in indices])
    size = min(batch_size, len(group))
    for start in range(0, len(group), size):
      batch = group[start:start + size]
      padded = np.pad(batch, ((0, size - len(batch)), (0, 0)))
      scores[indices[start:start + size]] = np.asarray(score(variables, padded))[:len(batch)]
  return scores


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
  """Indices of the ``k`` highest scores per row, highest first; ties go to the lower index."""
  return np.argsort(-scores, axis=-1, kind="stable")[..., :k]


def parse_args(argv):
  parser = argparse.ArgumentParser(prog="python -m jaxnoise.predict", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--checkpoint", required=True,
                      help="model directory written by `python -m jaxnoise.convert` or training")
  parser.add_argument("files", nargs="*", metavar="FILE",
                      help="audio files, or folders searched for audio files")
  parser.add_argument("--data", action="append", default=[], metavar="SOURCE:ROOT",
                      help="a labelled dataset (esc50:DIR, folder:DIR, csv:MANIFEST, "
                           "urbansound8k:DIR): its files, each printed with its label")
  parser.add_argument("--skip-bad-files", action="store_true",
                      help="skip unreadable or truncated files (named on stderr) instead of "
                           "stopping at the first")
  parser.add_argument("--top-k", type=int, default=5, help="classes to show per file (default 5)")
  parser.add_argument("--first-clip", action="store_true",
                      help="pad or cut every file to the model's clip length (the study's input) "
                           "instead of classifying the whole file")
  parser.add_argument("--json", action="store_true",
                      help="one JSON object per file and line, with every class score")
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  if args.top_k < 1:
    raise ConfigError(f"--top-k must be at least 1, got {args.top_k}")
  if not args.files and not args.data:
    raise ConfigError("give audio files or folders, or --data SOURCE:ROOT")
  paths = audio_io.list_audio_files(args.files) if args.files else []
  labels = [None] * len(paths)
  for spec_text in args.data:
    clips = sources.read_named(spec_text).clips
    paths += [pathlib.Path(clip.path) for clip in clips]
    labels += [clip.category for clip in clips]
  # The model first: a wrong --checkpoint is named before any audio file is opened.
  spec, variables = store.load_model(args.checkpoint)
  paths, labels = readable(paths, labels, args.skip_bad_files)
  scores = predict_scores(spec, variables, load_clips(spec, paths, args.first_clip))
  best = top_k(scores, min(args.top_k, spec.num_classes))
  for path, label, row, indices in zip(paths, labels, scores, best):
    if args.json:
      print(json.dumps({
          "file": str(path),
          **({"label": label} if label is not None else {}),
          "top_indices": indices.tolist(),
          "top_labels": [spec.labels[index] for index in indices],
          "top_scores": [float(row[index]) for index in indices],
          "output_activation": spec.output_activation,
          "scores": [float(value) for value in row],
      }))
    else:
      print(path if label is None else f"{path} (label: {label})")
      for index in indices:
        print(f"  {row[index]:.3f}  {spec.labels[index]}")
  return 0


if __name__ == "__main__":
  sys.exit(cli.run_main(main))
