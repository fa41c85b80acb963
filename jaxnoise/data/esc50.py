"""ESC-50: metadata, folds, class subsets, and fetching the official archive into a cache.

The dataset is read in its native layout (``audio/*.wav`` and ``meta/esc50.csv``, as in
karolpiczak/ESC-50). Labels always keep their ESC-50 target ids and category names, so a 19-class
model still reports "crying_baby (20)". Any subset of the five folds may be present (the test copy
in ../shared holds fold 4 and five other clips); callers ask which folds exist with
``folds_present``.
"""
import dataclasses
import logging
import os
import pathlib
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from typing import Callable, Iterable, Sequence

import numpy as np
import soundfile

from jaxnoise.data import metadata
from jaxnoise.errors import ConfigError, JaxnoiseError

# Every ESC-50 clip is 5 s of 44.1 kHz mono 16-bit PCM.
SAMPLE_RATE = 44100
CLIP_SECONDS = 5.0
CLIP_SAMPLES = 220500
FOLDS = (1, 2, 3, 4, 5)
CLIPS_PER_CLASS = 40
METADATA_FILE = pathlib.Path("meta") / "esc50.csv"
AUDIO_DIR = "audio"
METADATA_COLUMNS = ("filename", "fold", "target", "category", "src_file", "take")

# The official archive of the GitHub repository. GitHub regenerates archive files, so their hash is
# not stable; ``verify_dataset`` checks the content instead (2000 rows, 40 clips per class, 400 per
# fold, every file a 5-s 44.1 kHz mono WAV).
ARCHIVE_URL = "https://github.com/karolpiczak/ESC-50/archive/master.zip"
ARCHIVE_TOP_DIR = "ESC-50-master"

# ESC-50 category names in target order (0..49).
CLASS_NAMES = (
    "dog", "rooster", "pig", "cow", "frog", "cat", "hen", "insects", "sheep", "crow",
    "rain", "sea_waves", "crackling_fire", "crickets", "chirping_birds", "water_drops", "wind",
    "pouring_water", "toilet_flush", "thunderstorm",
    "crying_baby", "sneezing", "clapping", "breathing", "coughing", "footsteps", "laughing",
    "brushing_teeth", "snoring", "drinking_sipping",
    "door_wood_knock", "mouse_click", "keyboard_typing", "door_wood_creaks", "can_opening",
    "washing_machine", "vacuum_cleaner", "clock_alarm", "clock_tick", "glass_breaking",
    "helicopter", "chainsaw", "siren", "car_horn", "engine", "train", "church_bells", "airplane",
    "fireworks", "hand_saw",
)
# The study's classes: the "human, non-speech" and "interior/domestic" groups (targets 20..39)
# minus one. The paper's figure naming the dropped class is not available; clock_tick is dropped
# by default (config.data.dropped_class).
STUDY_TARGETS = tuple(range(20, 40))
DEFAULT_DROPPED_CLASS = "clock_tick"


@dataclasses.dataclass(frozen=True)
class Record:
  """One row of ``meta/esc50.csv``."""
  filename: str
  fold: int
  target: int
  category: str
  src_file: str
  take: str = ""


def metadata_path(root) -> pathlib.Path:
  return pathlib.Path(root) / METADATA_FILE


def audio_path(root, record: Record) -> pathlib.Path:
  return pathlib.Path(root) / AUDIO_DIR / record.filename


def load_metadata(root, *, check_files: bool = True) -> list[Record]:
  """Reads ``root/meta/esc50.csv`` into records, checking every row.

  Args:
    root: ESC-50 directory in its native layout.
    check_files: also require ``root/audio/<filename>`` to exist for every row.

  Raises:
    JaxnoiseError: the CSV is missing or malformed (the message names the line), a row's category
      does not match its target, a fold is outside 1..5, or listed audio files are missing.
  """
  path = metadata_path(root)
  if not path.is_file():
    raise JaxnoiseError(f"ESC-50 metadata {path} does not exist: expected the dataset's native "
                        "layout (audio/*.wav and meta/esc50.csv) under "
                        f"{pathlib.Path(root)}")
  records = [_parse_row(row, where)
             for where, row in metadata.read_rows(path, METADATA_COLUMNS, "ESC-50")]
  if not records:
    raise JaxnoiseError(f"{path} lists no clips")
  names = [r.filename for r in records]
  duplicates = sorted({n for n in names if names.count(n) > 1})
  if duplicates:
    raise JaxnoiseError(f"{path} lists these files more than once: {duplicates[:5]}")
  if check_files:
    absent = [r.filename for r in records if not audio_path(root, r).is_file()]
    if absent:
      raise JaxnoiseError(f"{len(absent)} clip(s) listed in {path} are missing from "
                          f"{pathlib.Path(root) / AUDIO_DIR}: {absent[:5]}")
  _warn_on_split_sources(records)
  return records


def _parse_row(row: dict, where: str) -> Record:
  try:
    fold, target = int(row["fold"]), int(row["target"])
  except (TypeError, ValueError):
    raise JaxnoiseError(f"{where}: fold and target must be integers, got "
                        f"fold={row['fold']!r} target={row['target']!r}") from None
  if fold not in FOLDS:
    raise JaxnoiseError(f"{where}: fold {fold} is not one of {FOLDS}")
  if not 0 <= target < len(CLASS_NAMES):
    raise JaxnoiseError(f"{where}: target {target} is outside 0..{len(CLASS_NAMES) - 1}")
  if row["category"] != CLASS_NAMES[target]:
    raise JaxnoiseError(f"{where}: category {row['category']!r} does not match target {target} "
                        f"({CLASS_NAMES[target]!r})")
  return Record(filename=row["filename"], fold=fold, target=target, category=row["category"],
                src_file=str(row["src_file"]), take=str(row.get("take") or ""))


def _warn_on_split_sources(records: Sequence[Record]):
  """Clips cut from one recording belong in one fold; otherwise test accuracy is inflated."""
  folds_by_source = {}
  for record in records:
    folds_by_source.setdefault(record.src_file, set()).add(record.fold)
  split = sorted(s for s, folds in folds_by_source.items() if len(folds) > 1)
  if split:
    logging.warning("%d source recording(s) appear in more than one fold (e.g. %s): clips of one "
                    "recording in train and test folds leak information", len(split), split[:3])


def class_targets(classes, dropped_class: str = DEFAULT_DROPPED_CLASS) -> tuple[int, ...]:
  """The ESC-50 targets a class subset names, in ascending target order.

  Args:
    classes: 'esc19' (targets 20..39 without ``dropped_class``), 'esc20' (targets 20..39),
      'esc50' (all), a comma-separated string of targets or category names, or a sequence of them.
    dropped_class: the category (or target) esc19 leaves out.

  Raises:
    ConfigError: an unknown subset name, target or category, or an empty subset.
  """
  if isinstance(classes, str):
    name = classes.strip().lower()
    if name == "esc19":
      dropped = _target_of(dropped_class, "config.data.dropped_class")
      if dropped not in STUDY_TARGETS:
        raise ConfigError(f"config.data.dropped_class={dropped_class!r} is not one of the study's "
                          f"targets 20..39 ({', '.join(CLASS_NAMES[t] for t in STUDY_TARGETS)})")
      return tuple(t for t in STUDY_TARGETS if t != dropped)
    if name == "esc20":
      return STUDY_TARGETS
    if name == "esc50":
      return tuple(range(len(CLASS_NAMES)))
    items = [item.strip() for item in classes.split(",") if item.strip()]
  else:
    items = list(classes)
  targets = sorted({_target_of(item, "config.data.classes") for item in items})
  if not targets:
    raise ConfigError(f"config.data.classes={classes!r} names no class; expected 'esc19', 'esc50' "
                      "or a comma-separated list of ESC-50 targets or category names")
  return tuple(targets)


def _target_of(item, key: str) -> int:
  if isinstance(item, (int, np.integer)) or (isinstance(item, str) and item.strip().isdigit()):
    target = int(item)
    if not 0 <= target < len(CLASS_NAMES):
      raise ConfigError(f"{key}: target {target} is outside 0..{len(CLASS_NAMES) - 1}")
    return target
  if item in CLASS_NAMES:
    return CLASS_NAMES.index(item)
  raise ConfigError(f"{key}: {item!r} is neither an ESC-50 target (0..49) nor a category name "
                    f"(e.g. {', '.join(CLASS_NAMES[20:23])}, ...)")


def folds_present(records: Iterable[Record]) -> tuple[int, ...]:
  return tuple(sorted({r.fold for r in records}))


def split_fold(records: Sequence[Record], test_fold: int):
  """The study's rotation: ``(train records, test records)`` = (the other folds, ``test_fold``)."""
  if test_fold not in FOLDS:
    raise ConfigError(f"test fold {test_fold} is not one of {FOLDS}")
  train = [r for r in records if r.fold != test_fold]
  test = [r for r in records if r.fold == test_fold]
  return train, test


# --- Finding or fetching the dataset ------------------------------------------------------------


def find_dataset(root: str = "", cache_dir: str = "~/.cache/jaxnoise", *, download: bool = True,
                 fetch: Callable | None = None) -> pathlib.Path:
  """The ESC-50 directory to use: ``root`` if given, else a copy in ``cache_dir``, else a download.

  Args:
    root: a local copy in the native layout ('' to use the cache).
    cache_dir: where the downloaded archive is extracted (``<cache_dir>/esc50``).
    download: fetch the official archive when no copy is found.
    fetch: ``fetch(url, destination_path)``; defaults to an HTTP download (tests pass a fake).

  Raises:
    JaxnoiseError: ``root`` has no ESC-50 layout, or nothing is cached and the download is off or
      fails (the message says where to put the data).
  """
  if root:
    root = pathlib.Path(root).expanduser()
    if not metadata_path(root).is_file():
      raise JaxnoiseError(f"config.data.root={str(root)!r} does not hold ESC-50: expected "
                          f"{metadata_path(root)} and {root / AUDIO_DIR}/*.wav (clone "
                          "https://github.com/karolpiczak/ESC-50 there, or leave config.data.root "
                          "empty to download it into the cache)")
    return root
  cached = pathlib.Path(cache_dir).expanduser() / "esc50"
  if metadata_path(cached).is_file():
    return cached
  where = (f"put ESC-50 (audio/*.wav and meta/esc50.csv, as in "
           f"https://github.com/karolpiczak/ESC-50) in {cached} or set config.data.root")
  if not download:
    raise JaxnoiseError(f"ESC-50 not found and downloading is off: {where}")
  try:
    return download_dataset(cached, fetch=fetch)
  except (urllib.error.URLError, OSError) as error:
    raise JaxnoiseError(f"ESC-50 not found and the download of {ARCHIVE_URL} failed "
                        f"({type(error).__name__}: {error}); offline? {where}") from None


def _http_fetch(url: str, destination: pathlib.Path):
  with urllib.request.urlopen(url, timeout=60) as response, open(destination, "wb") as out:
    shutil.copyfileobj(response, out, length=1 << 20)


def download_dataset(destination, *, url: str = ARCHIVE_URL, fetch: Callable | None = None,
                     verify_audio: bool = True) -> pathlib.Path:
  """Downloads the official archive, extracts and verifies it, then moves it to ``destination``.

  Nothing appears at ``destination`` unless the whole dataset verified, so an interrupted or
  corrupt download is retried from scratch next time.
  """
  destination = pathlib.Path(destination)
  destination.parent.mkdir(parents=True, exist_ok=True)
  staging = pathlib.Path(tempfile.mkdtemp(prefix=".esc50-download-", dir=destination.parent))
  try:
    archive = staging / "esc50.zip"
    logging.info("downloading ESC-50 from %s (about 600 MB)", url)
    (fetch or _http_fetch)(url, archive)
    try:
      with zipfile.ZipFile(archive) as bundle:
        bundle.extractall(staging / "extracted")
    except zipfile.BadZipFile as error:
      raise JaxnoiseError(f"the file downloaded from {url} is not a zip archive "
                          f"({error})") from None
    extracted = staging / "extracted" / ARCHIVE_TOP_DIR
    if not extracted.is_dir():
      tops = sorted(p.name for p in (staging / "extracted").iterdir())
      raise JaxnoiseError(f"the archive from {url} does not contain {ARCHIVE_TOP_DIR}/ "
                          f"(found {tops[:5]})")
    verify_dataset(extracted, check_audio=verify_audio)
    if destination.exists():
      shutil.rmtree(destination)
    os.replace(extracted, destination)
    logging.info("ESC-50 verified and extracted to %s", destination)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return destination


def verify_dataset(root, *, check_audio: bool = True):
  """Checks a complete ESC-50 copy: 2000 clips, 40 per class, 400 per fold, 5-s 44.1 kHz mono.

  Raises:
    JaxnoiseError: naming the first problem found.
  """
  records = load_metadata(root)
  expected_total = CLIPS_PER_CLASS * len(CLASS_NAMES)
  if len(records) != expected_total:
    raise JaxnoiseError(f"{metadata_path(root)} lists {len(records)} clips, expected "
                        f"{expected_total}")
  per_class = np.bincount([r.target for r in records], minlength=len(CLASS_NAMES))
  if not np.all(per_class == CLIPS_PER_CLASS):
    bad = int(np.argmax(per_class != CLIPS_PER_CLASS))
    raise JaxnoiseError(f"{metadata_path(root)}: class {bad} ({CLASS_NAMES[bad]}) has "
                        f"{per_class[bad]} clips, expected {CLIPS_PER_CLASS}")
  per_fold = {fold: sum(r.fold == fold for r in records) for fold in FOLDS}
  if set(per_fold.values()) != {expected_total // len(FOLDS)}:
    raise JaxnoiseError(f"{metadata_path(root)}: clips per fold {per_fold}, expected "
                        f"{expected_total // len(FOLDS)} each")
  if check_audio:
    for record in records:
      path = audio_path(root, record)
      try:
        info = soundfile.info(str(path))
      except (soundfile.LibsndfileError, RuntimeError) as error:
        raise JaxnoiseError(f"{path} is not readable audio: {error}") from None
      if (info.samplerate, info.channels, info.frames) != (SAMPLE_RATE, 1, CLIP_SAMPLES):
        raise JaxnoiseError(f"{path}: {info.samplerate} Hz, {info.channels} channel(s), "
                            f"{info.frames} frames; expected {SAMPLE_RATE} Hz mono "
                            f"{CLIP_SAMPLES} frames")
