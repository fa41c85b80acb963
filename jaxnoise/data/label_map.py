"""Zero-shot for any label set: a map from a dataset's labels to AudioSet classes.

  python -m jaxnoise.data.label_map --labels esc50 > esc50_map.json
  python -m jaxnoise.data.label_map --labels folder:path/to/clips > my_map.json
  python -m jaxnoise.data.label_map --labels "dog,door knock,glass breaking"

prints a suggested map, JSON ``{dataset label: [AudioSet display names]}``, for the user to edit and
pass as ``config.model.label_map``. An AudioSet head (527 sigmoid outputs) then scores each label by
the maximum of its mapped outputs (``jaxnoise.sweep.readout``), exactly as the built-in ESC-50 map
(``jaxnoise.data.zero_shot``) does. A suggestion is a starting point, not a decision: AudioSet's
ancestors ('Animal', 'Domestic sounds') fire for many labels, and a label with no AudioSet class
gets none; every label the sweep tests needs at least one class, or the sweep stops naming it.

Suggestions: a label and an AudioSet name (each comma-separated alternative of a display name,
e.g. 'Baby cry' and 'infant cry' of 'Baby cry, infant cry') are compared as sets of crudely stemmed
words ('crying_baby' -> {cry, baby}). **Exact**: the same set. **Near**: every word of the label is
in the name, or the name is one of the label's words, or their spelling is at least
``NEAR_RATIO`` similar (difflib, words of 6 letters or more). Exact matches come first, then near ones, each in AudioSet order.
"""
import argparse
import difflib
import json
import pathlib
import re
import sys

from jaxnoise.data.labels import audioset_labels
from jaxnoise.errors import ConfigError

NEAR_RATIO = 0.85
MIN_SIMILAR_LENGTH = 6
SUFFIXES = ("ing", "es", "s")


def words(text: str) -> tuple[str, ...]:
  """Lower-case words of a label or name, without parenthesised notes ('Whimper (dog)')."""
  text = re.sub(r"\([^)]*\)", " ", text.lower())
  return tuple(word for word in re.split(r"[^a-z0-9]+", text) if word)


def stem(word: str) -> str:
  """A crude stem ('crying' -> 'cry', 'sneezing' and 'sneeze' -> 'sneez'); enough to line up
  label spellings."""
  for suffix in SUFFIXES:
    if word.endswith(suffix) and len(word) - len(suffix) >= 3:
      word = word[:-len(suffix)]
      break
  return word[:-1] if word.endswith("e") and len(word) >= 4 else word


def stems(text: str) -> frozenset:
  return frozenset(stem(word) for word in words(text))


def similar(first: str, second: str) -> bool:
  """Spellings at least NEAR_RATIO alike; short words are left out ('cow' and 'crow' differ)."""
  return (min(len(first), len(second)) >= MIN_SIMILAR_LENGTH
          and difflib.SequenceMatcher(None, first, second).ratio() >= NEAR_RATIO)


def suggest(labels) -> dict:
  """``{label: [AudioSet display names]}``: exact matches first, then near ones (module doc)."""
  names = audioset_labels()
  alternatives = [(index, part.strip()) for index, name in enumerate(names)
                  for part in name.split(",") if part.strip()]
  suggestion = {}
  for label in labels:
    label_stems = stems(label)
    label_text = " ".join(words(label))
    exact, near = set(), set()
    for index, part in alternatives:
      part_stems = stems(part)
      if not part_stems or not label_stems:
        continue
      if part_stems == label_stems:
        exact.add(index)
      elif (label_stems <= part_stems
            or (len(part_stems) == 1 and part_stems <= label_stems)
            or similar(label_text, " ".join(words(part)))):
        near.add(index)
    suggestion[label] = ([names[i] for i in sorted(exact)] +
                         [names[i] for i in sorted(near - exact)])
  return suggestion


def load(path) -> dict:
  """The map of ``config.model.label_map`` as ``{label: (AudioSet names, ...)}``.

  Raises:
    ConfigError: the file is missing or not a JSON object of lists of names, or names a class
      AudioSet does not have (suggesting the closest).
  """
  path = pathlib.Path(path).expanduser()
  try:
    mapping = json.loads(path.read_text(encoding="utf-8"))
  except OSError as error:
    raise ConfigError(f"config.model.label_map={str(path)!r} cannot be read ({error})") from None
  except json.JSONDecodeError as error:
    raise ConfigError(f"config.model.label_map: {path} is not JSON ({error})") from None
  if not isinstance(mapping, dict) or not all(
      isinstance(v, list) and all(isinstance(n, str) for n in v) for v in mapping.values()):
    raise ConfigError(f"config.model.label_map: {path} must hold a JSON object "
                      '{"dataset label": ["AudioSet class", ...]}')
  known = set(audioset_labels())
  for label, classes in mapping.items():
    for name in classes:
      if name not in known:
        close = difflib.get_close_matches(name, sorted(known), n=3)
        raise ConfigError(f"config.model.label_map: {path} maps {label!r} to {name!r}, which is "
                          f"not an AudioSet class name (closest: {close})")
  return {label: tuple(classes) for label, classes in mapping.items()}


def dataset_labels(spec: str) -> tuple:
  """The labels ``--labels`` names: 'esc50', SOURCE:ROOT (``sources.read_named``), a text file
  with one label per line, or a comma-separated list."""
  from jaxnoise.data import esc50, sources  # pylint: disable=import-outside-toplevel
  if spec == "esc50":
    return esc50.CLASS_NAMES
  source, _, root = spec.partition(":")
  if root and source in sources.LOCAL_READERS:
    return sources.read_named(spec).classes
  if pathlib.Path(spec).is_file():
    return tuple(line.strip() for line in pathlib.Path(spec).read_text("utf-8").splitlines()
                 if line.strip())
  return tuple(label.strip() for label in spec.split(",") if label.strip())


def main(argv=None):
  parser = argparse.ArgumentParser(prog="python -m jaxnoise.data.label_map", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--labels", required=True,
                      help="esc50 | folder:ROOT | csv:MANIFEST | urbansound8k:ROOT | a file of "
                           "labels (one per line) | label1,label2,...")
  args = parser.parse_args(argv)
  labels = dataset_labels(args.labels)
  if not labels:
    raise ConfigError(f"--labels {args.labels!r} names no label")
  suggestion = suggest(labels)
  print(json.dumps(suggestion, indent=2))
  empty = [label for label, names in suggestion.items() if not names]
  print(f"{len(labels) - len(empty)} of {len(labels)} labels have a suggestion; edit the map "
        "(drop ancestors that fire for many labels) and give every label at least one class"
        + (f"; none for: {', '.join(empty)}" if empty else ""), file=sys.stderr)
  return 0


if __name__ == "__main__":
  from jaxnoise import cli  # pylint: disable=import-outside-toplevel
  sys.exit(cli.run_main(main))
