"""Labelled audio from any source, as one record type every stage reads.

  clip_set = read_source(config.data)                     # the configured source, folds settled
  clips, names, ids = select_classes(clip_set, config.data.classes, config.data.dropped_class)

A source is a small reader that turns a dataset's own layout into ``Clip`` records (the audio
file, its label, fold and source recording). Training, the sweep, the report and the study's
inference set read records only, so no stage knows which layout the clips came from:

- ``esc50``: ESC-50's native layout (``audio/*.wav``, ``meta/esc50.csv``), its five folds;
- ``folder``: one sub-folder per class (``root/<label>/*.wav|flac|ogg|mp3``), no folds;
- ``csv``: a manifest ``path,label[,fold][,group]`` (paths relative to the manifest; ``filename``
  for ``path`` and ``category`` for ``label`` are accepted too, and a ``target`` column holds
  ESC-50 target ids, as ESC-50's own metadata does);
- ``urbansound8k``: its native layout (``metadata/UrbanSound8K.csv``, ``audio/fold1..10``);
- ``tfds:<name>``: a TensorFlow Datasets dataset with an audio feature and a class label
  (``jaxnoise.data.tfds_source``), decoded once into the clip cache.

Folds: ``config.data.split_folds`` = 0 keeps a source's own folds; k >= 2 re-splits into k folds
with ``splits.assign_folds`` (seeded by ``config.data.split_seed``, stratified, keeping the clips of
one source recording together: ESC-50's ``src_file``, UrbanSound8K's ``fsID``, a manifest's
``group``, else the file itself). A source without folds is split into ``DEFAULT_SPLIT_FOLDS``
folds the same way (fewer when it holds fewer recordings), so training's fold rotation and the
sweep's ``config.sweep.folds`` mean the same for every source.

Order: clips are sorted by file name (then by their name in the dataset), whatever the source, so
the same clips give the same batches, splits and tables from any layout.
"""
import csv
import dataclasses
import pathlib
from typing import Sequence

import numpy as np

from jaxnoise.audio import io as audio_io
from jaxnoise.data import esc50, metadata, splits
from jaxnoise.errors import AudioError, ConfigError, JaxnoiseError

SOURCES = ("esc50", "folder", "csv", "urbansound8k", "tfds:<name>")
TFDS_PREFIX = "tfds:"
# ESC-50 has five folds; a source without folds gets as many, so the study's rotation carries over.
DEFAULT_SPLIT_FOLDS = 5
ALL_CLASSES = "all"
ESC50_PRESETS = ("esc19", "esc20", "esc50")

US8K_METADATA = pathlib.Path("metadata") / "UrbanSound8K.csv"
US8K_COLUMNS = ("slice_file_name", "fsID", "fold", "classID", "class")
US8K_FOLDS = tuple(range(1, 11))


@dataclasses.dataclass(frozen=True)
class Clip:
  """One labelled audio file.

  Attributes:
    path: the audio file (absolute, or as the source found it).
    filename: its name within the dataset, unique there (ESC-50: the file name; a folder or a
      manifest: the path below the root), shown in every table.
    category: the class name.
    target: the class's position in the source's class list (``ClipSet.classes``); for ESC-50
      that is the ESC-50 target id.
    fold: 1-based fold; 0 when the source has none (``read_source`` always settles it).
    group: the source recording: clips of one group stay in one fold.
  """
  path: str
  filename: str
  category: str
  target: int
  fold: int
  group: str


@dataclasses.dataclass(frozen=True)
class ClipSet:
  """A source's clips and its class list (``clip.target`` indexes ``classes``)."""
  clips: tuple
  classes: tuple
  where: str          # the file or folder the clips were read from, for messages
  split: str = ""     # how the folds came about ('' = the source's own)


def sort_key(clip: Clip):
  return (pathlib.PurePath(clip.filename).name, clip.filename)


def make_clip_set(clips, classes, where) -> ClipSet:
  if not clips:
    raise JaxnoiseError(f"{where} holds no labelled clip")
  names = [c.filename for c in clips]
  if len(set(names)) != len(names):
    repeated = sorted({n for n in names if names.count(n) > 1})
    raise JaxnoiseError(f"{where} lists these files more than once: {repeated[:5]}")
  return ClipSet(tuple(sorted(clips, key=sort_key)), tuple(classes), str(where))


# --- Readers ------------------------------------------------------------------------------------


def read_esc50(root) -> ClipSet:
  """ESC-50's native layout; classes are ESC-50's 50 categories (targets are ESC-50 ids)."""
  root = pathlib.Path(root)
  clips = [Clip(str(esc50.audio_path(root, r)), r.filename, r.category, r.target, r.fold,
                r.src_file) for r in esc50.load_metadata(root)]
  return make_clip_set(clips, esc50.CLASS_NAMES, esc50.metadata_path(root))


def read_folder(root) -> ClipSet:
  """``root/<label>/<files>`` (audio files found recursively below each class folder)."""
  root = pathlib.Path(root)
  if not root.is_dir():
    raise JaxnoiseError(f"{root} is not a folder: the 'folder' source reads one sub-folder per "
                        "class (root/<label>/*.wav)")
  classes = tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and
                         not p.name.startswith(".")))
  clips = []
  for target, label in enumerate(classes):
    for path in sorted(p for p in (root / label).rglob("*")
                       if p.is_file() and p.suffix.lower() in audio_io.AUDIO_SUFFIXES):
      name = path.relative_to(root).as_posix()
      clips.append(Clip(str(path), name, label, target, 0, name))
  if not clips:
    raise JaxnoiseError(f"{root} has no class folder with audio files "
                        f"({', '.join(audio_io.AUDIO_SUFFIXES)}); expected root/<label>/*.wav")
  return make_clip_set(clips, classes, root)


PATH_COLUMNS = ("path", "filename")
LABEL_COLUMNS = ("label", "category")


def read_csv(manifest) -> ClipSet:
  """A manifest ``path,label[,fold][,group]``; paths are relative to the manifest's folder.

  Classes are the labels in sorted order; with a ``target`` column instead of a label, targets
  are ESC-50 ids and classes ESC-50's categories.
  """
  manifest = pathlib.Path(manifest)
  if manifest.is_dir():
    found = sorted(manifest.glob("*.csv"))
    if len(found) != 1:
      raise JaxnoiseError(f"{manifest} is a folder with {len(found)} CSV files; point "
                          "config.data.root at the manifest itself (path,label[,fold])")
    manifest = found[0]
  if not manifest.is_file():
    raise JaxnoiseError(f"manifest {manifest} does not exist: the 'csv' source reads a CSV file "
                        "with the columns path,label[,fold]")
  with open(manifest, newline="", encoding="utf-8") as handle:
    reader = csv.DictReader(handle)
    columns = reader.fieldnames or ()
    path_column = next((c for c in PATH_COLUMNS if c in columns), None)
    label_column = next((c for c in LABEL_COLUMNS if c in columns), None)
    by_target = label_column is None and "target" in columns
    if path_column is None or (label_column is None and not by_target):
      raise JaxnoiseError(f"{manifest} has the columns {list(columns)}; expected path (or "
                          "filename) and label (or category, or ESC-50 target ids in target), "
                          "and optionally fold and group")
    rows = list(enumerate(reader, start=2))
  if by_target:
    classes = esc50.CLASS_NAMES
    labels = {line: classes[_integer(row["target"], f"{manifest}:{line}", "target", 0,
                                     len(classes) - 1)] for line, row in rows}
  else:
    labels = {line: (row[label_column] or "").strip() for line, row in rows}
    classes = tuple(sorted(set(labels.values())))
  clips = []
  for line, row in rows:
    where = f"{manifest}:{line}"
    name = (row[path_column] or "").strip()
    if not name or not labels[line]:
      raise JaxnoiseError(f"{where}: empty {path_column} or label")
    path = manifest.parent / name
    if not path.is_file():
      raise JaxnoiseError(f"{where}: {name} is not a file (looked for {path})")
    fold = _integer(row["fold"], where, "fold", 1, None) if row.get("fold") else 0
    clips.append(Clip(str(path), name, labels[line], classes.index(labels[line]), fold,
                      (row.get("group") or "").strip() or name))
  folds = {c.fold for c in clips}
  if 0 in folds and len(folds) > 1:
    raise JaxnoiseError(f"{manifest}: some rows have a fold and some do not; give every row one "
                        "or none")
  return make_clip_set(clips, classes, manifest)


def read_urbansound8k(root) -> ClipSet:
  """UrbanSound8K's layout: ``metadata/UrbanSound8K.csv`` and ``audio/fold<k>/<slice>``; classes
  in ``classID`` order (a partial copy keeps the order of the ids it holds)."""
  root = pathlib.Path(root)
  table = root / US8K_METADATA
  if not table.is_file():
    raise JaxnoiseError(f"UrbanSound8K metadata {table} does not exist: expected its native "
                        f"layout (metadata/UrbanSound8K.csv, audio/fold1..10/*.wav) under {root}")
  rows = metadata.read_rows(table, US8K_COLUMNS, "UrbanSound8K")
  names_by_id = {}
  for where, row in rows:
    class_id = _integer(row["classID"], where, "classID", 0, None)
    if names_by_id.setdefault(class_id, row["class"]) != row["class"]:
      raise JaxnoiseError(f"{where}: classID {class_id} is {row['class']!r} here but "
                          f"{names_by_id[class_id]!r} above")
  ids = sorted(names_by_id)
  classes = tuple(names_by_id[i] for i in ids)
  clips = []
  for where, row in rows:
    fold = _integer(row["fold"], where, "fold", 1, len(US8K_FOLDS))
    name = f"fold{fold}/{row['slice_file_name']}"
    path = root / "audio" / name
    if not path.is_file():
      raise JaxnoiseError(f"{where}: {path} does not exist")
    clips.append(Clip(str(path), name, row["class"], ids.index(int(row["classID"])), fold,
                      str(row["fsID"])))
  return make_clip_set(clips, classes, table)


def _integer(text, where: str, column: str, low: int, high) -> int:
  try:
    value = int(str(text).strip())
  except ValueError:
    value = None
  if value is None or value < low or (high is not None and value > high):
    span = f"{low}..{high}" if high is not None else f">= {low}"
    raise JaxnoiseError(f"{where}: {column} {text!r} is not an integer {span}")
  return value


# --- One entry point ----------------------------------------------------------------------------


# The sources read from a local path; ``tfds:<name>`` reads through TFDS (tfds_source).
LOCAL_READERS = {"esc50": read_esc50, "folder": read_folder, "csv": read_csv,
                 "urbansound8k": read_urbansound8k}


def check_source_name(source: str, key: str = "config.data.source") -> str:
  """``source`` if it names a reader; ConfigError naming ``key`` otherwise."""
  if source in LOCAL_READERS or (
      source.startswith(TFDS_PREFIX) and len(source) > len(TFDS_PREFIX)):
    return source
  raise ConfigError(f"{key}={source!r} is not a data source; expected one of {SOURCES}")


def read_clips(data_config, source: str, root) -> ClipSet:
  """The clips of ``source`` at ``root`` with the source's own folds (0 where it has none)."""
  check_source_name(source)
  if source == "esc50":
    return read_esc50(esc50.find_dataset(root, data_config.cache_dir,
                                         download=bool(data_config.get("download", True))))
  if source.startswith(TFDS_PREFIX):
    from jaxnoise.data import tfds_source  # pylint: disable=import-outside-toplevel
    return tfds_source.read_tfds(source[len(TFDS_PREFIX):], data_config, root)
  if not root:
    raise ConfigError(f"config.data.source={source!r} reads config.data.root, which is empty; "
                      "give the dataset's folder (or the manifest, for 'csv')")
  return LOCAL_READERS[source](pathlib.Path(root).expanduser())


def read_named(spec: str) -> ClipSet:
  """The clips a command line names as ``SOURCE:ROOT`` (esc50, folder, csv, urbansound8k),
  with the source's own folds (0 where it has none)."""
  source, _, root = spec.partition(":")
  if source not in LOCAL_READERS or not root:
    raise ConfigError(f"{spec!r} does not name a dataset; expected SOURCE:ROOT with SOURCE one "
                      f"of {sorted(LOCAL_READERS)} (e.g. folder:/data/mine)")
  return LOCAL_READERS[source](pathlib.Path(root).expanduser())


def detect_source(root) -> str:
  """'esc50' for ESC-50's layout, 'urbansound8k' for its layout, 'csv' for a manifest (a CSV
  file, or a folder holding exactly one), else 'folder'."""
  root = pathlib.Path(root).expanduser()
  if esc50.metadata_path(root).is_file():
    return "esc50"
  if (root / US8K_METADATA).is_file():
    return "urbansound8k"
  if root.suffix.lower() == ".csv" or (root.is_dir() and len(list(root.glob("*.csv"))) == 1):
    return "csv"
  return "folder"


def check_split(data_config) -> int:
  """``config.data.split_folds`` as an int (0, or k >= 2); ConfigError otherwise."""
  k = data_config.get("split_folds", 0)
  if isinstance(k, bool) or not isinstance(k, int) or k < 0 or k == 1:
    raise ConfigError(f"config.data.split_folds must be 0 (the source's own folds) or an integer "
                      f">= 2 (re-split into that many folds), got {k!r}")
  seed = data_config.get("split_seed", 0)
  if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
    raise ConfigError(f"config.data.split_seed must be an integer >= 0, got {seed!r}")
  return k


def settle_folds(clip_set: ClipSet, split_folds: int, split_seed: int) -> ClipSet:
  """``clip_set`` with its own folds, or re-split (see the module doc); ``split`` says which."""
  has_folds = all(c.fold > 0 for c in clip_set.clips)
  if split_folds == 0 and has_folds:
    return clip_set
  groups = [c.group for c in clip_set.clips]
  k = split_folds or min(DEFAULT_SPLIT_FOLDS, len(set(groups)))
  if k < 2:  # a single recording: one fold, tested whole
    folds = np.ones(len(groups), np.int64)
  else:
    try:
      folds = splits.assign_folds([c.category for c in clip_set.clips], groups, k, split_seed)
    except ConfigError as error:
      raise ConfigError(f"config.data.split_folds={split_folds} ({clip_set.where}): {error}"
                        ) from None
  why = "config.data.split_folds" if split_folds else "the source has no folds"
  clips = tuple(dataclasses.replace(c, fold=int(f)) for c, f in zip(clip_set.clips, folds))
  return dataclasses.replace(clip_set, clips=clips,
                             split=f"{k} folds by splits.assign_folds, seed {split_seed} ({why})")


def read_source(data_config, source: str | None = None, root=None) -> ClipSet:
  """The clips ``config.data`` names (or ``source`` at ``root``), their folds settled."""
  source = data_config.get("source", "esc50") if source is None else source
  root = data_config.root if root is None else root
  clip_set = read_clips(data_config, source, root)
  return settle_folds(clip_set, check_split(data_config), int(data_config.get("split_seed", 0)))


# --- Classes ------------------------------------------------------------------------------------


def class_targets(classes, dropped_class, vocabulary: Sequence[str], where) -> tuple[int, ...]:
  """Positions in ``vocabulary`` of the classes ``config.data.classes`` names, ascending.

  ``classes`` is 'all', an ESC-50 subset ('esc19', 'esc20', 'esc50', by name, so any source
  whose labels are ESC-50's categories takes them), a comma-separated string of labels or class
  positions, or a sequence of them.
  """
  vocabulary = tuple(vocabulary)
  if isinstance(classes, str) and classes.strip().lower() == ALL_CLASSES:
    return tuple(range(len(vocabulary)))
  if isinstance(classes, str) and classes.strip().lower() in ESC50_PRESETS:
    wanted = [esc50.CLASS_NAMES[t] for t in esc50.class_targets(classes, dropped_class)]
    absent = [name for name in wanted if name not in vocabulary]
    if absent:
      raise ConfigError(f"config.data.classes={classes!r} names ESC-50 classes that {where} does "
                        f"not have ({', '.join(absent[:4])}, ...); its classes are "
                        f"{list(vocabulary[:8])}{', ...' if len(vocabulary) > 8 else ''}: set "
                        "config.data.classes='all' or list some of them")
    return tuple(sorted(vocabulary.index(name) for name in wanted))
  items = ([item.strip() for item in classes.split(",") if item.strip()]
           if isinstance(classes, str) else list(classes))
  kind = "an ESC-50 target" if vocabulary == esc50.CLASS_NAMES else "a class position"
  last = len(vocabulary) - 1
  targets = set()
  for item in items:
    if item in vocabulary:
      targets.add(vocabulary.index(item))
    elif str(item).strip().isdigit():
      if int(item) > last:
        raise ConfigError(f"config.data.classes: target {int(item)} is outside 0..{last} (the "
                          f"class positions of {where})")
      targets.add(int(item))
    else:
      raise ConfigError(f"config.data.classes: {item!r} is neither {kind} (0..{last}) nor a "
                        f"category name of {where} ({', '.join(vocabulary[:4])}, ...)")
  if not targets:
    raise ConfigError(f"config.data.classes={classes!r} names no class; expected 'all', "
                      "'esc19', or a comma-separated list of labels")
  return tuple(sorted(targets))


def select_classes(clip_set: ClipSet, classes, dropped_class=esc50.DEFAULT_DROPPED_CLASS):
  """``(clips, label_names, target_ids)`` of a class subset, every class holding a clip.

  Raises:
    ConfigError: unknown classes, or classes of the subset without any clip (a class without
      clips can be neither trained nor tested, and would silently widen a sweep's decisions).
  """
  target_ids = class_targets(classes, dropped_class, clip_set.classes, clip_set.where)
  wanted = set(target_ids)
  kept = [c for c in clip_set.clips if c.target in wanted]
  present = {c.target for c in kept}
  missing = [f"{clip_set.classes[t]} ({t})" for t in target_ids if t not in present]
  if missing:
    held = sorted({c.target for c in clip_set.clips})
    raise ConfigError(f"config.data.classes: {len(missing)} class(es) of the subset have no clip "
                      f"in {clip_set.where}: {', '.join(missing[:8])}"
                      f"{', ...' if len(missing) > 8 else ''}; that copy holds targets {held}; "
                      "choose classes it holds or point config.data.root at a complete copy")
  return kept, tuple(clip_set.classes[t] for t in target_ids), target_ids


def label_indices(clips: Sequence[Clip], target_ids: Sequence[int]) -> np.ndarray:
  """``[clips]`` int32 positions of each clip's target in ``target_ids`` (the model labels)."""
  position = {target: index for index, target in enumerate(target_ids)}
  unknown = sorted({c.target for c in clips} - set(position))
  if unknown:
    raise ConfigError(f"clips of targets {unknown} are not in the class subset "
                      f"{list(target_ids)}")
  return np.asarray([position[c.target] for c in clips], dtype=np.int32)


def folds_present(clips) -> tuple[int, ...]:
  return tuple(sorted({c.fold for c in clips}))


# --- Input hygiene ------------------------------------------------------------------------------


def screen(clips: Sequence[Clip], skip_bad_files: bool):
  """``(readable clips, [{'file', 'reason'}])``: every file's header is checked before any stage
  decodes audio (``audio_io.check_audio_header``: unreadable, empty, or a WAV announcing more
  frames than it holds). A bad file is an AudioError naming it, or with ``skip_bad_files`` left
  out and listed, so that one damaged copy neither stops a long run nor vanishes unnoticed.
  """
  kept, bad = [], []
  for clip in clips:
    try:
      audio_io.check_audio_header(clip.path)
    except AudioError as error:
      if not skip_bad_files:
        raise AudioError(f"{error} (set config.data.skip_bad_files=True to skip such files and "
                         "list them in run.json)") from None
      bad.append({"file": clip.filename, "reason": str(error)})
      continue
    kept.append(clip)
  return kept, bad


FOLDS_FILE = "folds.csv"
FOLDS_COLUMNS = ("filename", "category", "fold", "group")


def folds_rows(clips) -> list[dict]:
  """The split used, one row per clip, for ``<workdir>/folds.csv``."""
  return [{"filename": c.filename, "category": c.category, "fold": c.fold, "group": c.group}
          for c in clips]


def fold_choices(data_config):
  """Folds a config may name, or None when only the data can tell (a source's own folds)."""
  k = check_split(data_config)
  if k:
    return tuple(range(1, k + 1))
  source = data_config.get("source", "esc50")
  if source == "esc50":
    return esc50.FOLDS
  if source == "urbansound8k":
    return US8K_FOLDS
  return None
