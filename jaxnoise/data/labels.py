"""Class-name lists shipped with the package.

The AudioSet list (``audioset_labels.csv``: index, mid, display_name) is Google's AudioSet ontology
class list ``class_labels_indices.csv`` (CC BY 4.0, research.google.com/audioset), in the index
order every AudioSet-trained head (EfficientAT, PANNs, HTS-AT) uses.
"""
import csv
import functools
import importlib.resources

AUDIOSET_NUM_CLASSES = 527
AUDIOSET_FILE = "audioset_labels.csv"


@functools.lru_cache(maxsize=1)
def audioset_classes() -> tuple[tuple[str, str], ...]:
  """The 527 AudioSet classes as ``(mid, display_name)`` pairs, in output-index order."""
  text = importlib.resources.files("jaxnoise.data").joinpath(AUDIOSET_FILE).read_text("utf-8")
  rows = list(csv.DictReader(text.splitlines()))
  # The file ships with the package, so a wrong row count is a packaging bug, not a user error.
  assert [int(row["index"]) for row in rows] == list(range(AUDIOSET_NUM_CLASSES)), AUDIOSET_FILE
  return tuple((row["mid"], row["display_name"]) for row in rows)


def audioset_labels() -> tuple[str, ...]:
  """The 527 AudioSet display names in output-index order ('Speech', 'Male speech, ...', ...)."""
  return tuple(name for _, name in audioset_classes())
