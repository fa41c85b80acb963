"""The ``tfds:<name>`` source: a TensorFlow Datasets dataset, decoded once into the clip cache.

Any TFDS dataset with an audio feature and a ``ClassLabel`` serves (feature names in
``config.data.tfds``). Its examples are written once as WAV files under
``<cache_dir>/tfds/<name>/<version>/<digest of config.data.tfds>/`` with an index ``clips.csv`` (written last, so an
interrupted decoding starts over), and from then on the dataset is read like any folder of files:
the stages see ``Clip`` records only. Integer audio is written as 16-bit PCM (lossless for the
project's own ``esc50`` builder, which stores the files' PCM), float audio as 32-bit float.

Folds come from ``config.data.tfds.fold_key`` (an integer feature), else from splits named
``fold<k>``, else the source has none (``sources.settle_folds`` splits it). The project's builders
(``jaxnoise.data.tfds_esc50``) are registered on import, so ``tfds:esc50`` needs no more.
"""
import hashlib
import json
import pathlib
import re
import shutil
import tempfile

import numpy as np
import soundfile

from jaxnoise.data import sources
from jaxnoise.errors import ConfigError, JaxnoiseError
from jaxnoise.runtime import files

INDEX_FILE = "clips.csv"
INDEX_COLUMNS = ("file", "filename", "category", "fold", "group")
FOLD_SPLIT = re.compile(r"^fold(\d+)$")


def read_tfds(name: str, data_config, manual_dir) -> sources.ClipSet:
  """The clips of TFDS dataset ``name`` (decoding it into the cache the first time)."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise ConfigError(f"config.data.source='tfds:{name}' needs tensorflow-datasets: pip install "
                      "'jaxnoise[tfds]'") from None
  from jaxnoise.data import tfds_esc50  # pylint: disable=import-outside-toplevel,unused-import
  settings = data_config.tfds
  try:
    builder = tfds.builder(name, data_dir=settings.data_dir or None)
  except Exception as error:  # pylint: disable=broad-except  # TFDS raises many kinds here
    raise ConfigError(f"config.data.source='tfds:{name}': TFDS has no dataset {name!r} "
                      f"({type(error).__name__}: {error})") from None
  label_feature = _feature(builder, settings.label_key, "label_key")
  if not hasattr(label_feature, "names"):
    raise ConfigError(f"config.data.tfds.label_key={settings.label_key!r}: feature of tfds:{name} "
                      "is not a ClassLabel")
  classes = tuple(label_feature.names)
  cache = (pathlib.Path(data_config.cache_dir).expanduser() / "tfds" / name /
           str(builder.info.version) / settings_digest(settings))
  if not (cache / INDEX_FILE).is_file():
    if not builder.is_prepared():
      if not data_config.get("download", True):
        raise JaxnoiseError(f"tfds:{name} is not prepared in {builder.data_dir} and downloading "
                            "is off (config.data.download); prepare it or set "
                            "config.data.tfds.data_dir")
      config = (tfds.download.DownloadConfig(manual_dir=str(manual_dir)) if manual_dir else None)
      builder.download_and_prepare(download_config=config)
    decode(builder, settings, classes, cache)
  return read_index(cache, classes, name)


def settings_digest(settings) -> str:
  """A short digest of ``config.data.tfds``: other features, splits or rates decode anew."""
  text = json.dumps({key: settings[key] if not isinstance(settings[key], tuple)
                     else list(settings[key]) for key in sorted(settings.keys())},
                    sort_keys=True, default=str)
  return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _feature(builder, key: str, setting: str):
  features = builder.info.features
  if key not in features:
    raise ConfigError(f"config.data.tfds.{setting}={key!r} is not a feature of "
                      f"tfds:{builder.name}; its features are {sorted(features.keys())}")
  return features[key]


def _examples(builder, split: str):
  """The examples of ``split`` as dicts of numpy values (ArrayRecord without TensorFlow)."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  if str(builder.info.file_format).lower().endswith("array_record"):
    source = builder.as_data_source(split=split)
    return (source[index] for index in range(len(source)))
  return tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))


def decode(builder, settings, classes, cache: pathlib.Path) -> None:
  """Writes every example of the chosen splits as a WAV file and ``clips.csv`` under ``cache``."""
  audio_feature = _feature(builder, settings.audio_key, "audio_key")
  rate = int(settings.sample_rate or getattr(audio_feature, "sample_rate", 0) or 0)
  if rate <= 0:
    raise ConfigError(f"tfds:{builder.name}'s feature {settings.audio_key!r} has no sample rate; "
                      "set config.data.tfds.sample_rate")
  for key in ("fold_key", "group_key", "name_key"):
    if settings[key]:
      _feature(builder, settings[key], key)
  split_names = tuple(settings.splits) or tuple(sorted(builder.info.splits.keys()))
  unknown = [s for s in split_names if s not in builder.info.splits]
  if unknown:
    raise ConfigError(f"config.data.tfds.splits: {unknown} are not splits of tfds:{builder.name} "
                      f"({sorted(builder.info.splits.keys())})")
  cache.parent.mkdir(parents=True, exist_ok=True)
  staging = pathlib.Path(tempfile.mkdtemp(prefix=".decoding-", dir=cache.parent))
  try:
    rows = []
    for split in split_names:
      split_fold = FOLD_SPLIT.match(split)
      for index, example in enumerate(_examples(builder, split)):
        name = (_text(example[settings.name_key]) if settings.name_key
                else f"{split}/{index:06d}.wav")
        fold = (int(example[settings.fold_key]) if settings.fold_key
                else int(split_fold.group(1)) if split_fold else 0)
        audio = np.asarray(example[settings.audio_key])
        file = pathlib.Path(split) / f"{index:06d}.wav"
        (staging / file).parent.mkdir(parents=True, exist_ok=True)
        subtype = "PCM_16" if audio.dtype == np.int16 else "FLOAT"
        data = audio if audio.dtype == np.int16 else audio.astype(np.float32)
        soundfile.write(staging / file, data, rate, subtype=subtype)
        rows.append({"file": file.as_posix(), "filename": name,
                     "category": classes[int(example[settings.label_key])], "fold": fold,
                     "group": _text(example[settings.group_key]) if settings.group_key else name})
    files.atomic_write_csv(staging / INDEX_FILE, INDEX_COLUMNS, rows)
    if cache.exists():
      shutil.rmtree(cache)
    staging.rename(cache)
  finally:
    shutil.rmtree(staging, ignore_errors=True)


def _text(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_index(cache: pathlib.Path, classes, name: str) -> sources.ClipSet:
  rows = files.read_csv(cache / INDEX_FILE)
  clips = [sources.Clip(str(cache / row["file"]), row["filename"], row["category"],
                        classes.index(row["category"]), int(row["fold"]), row["group"])
           for row in rows]
  return sources.make_clip_set(clips, classes, f"tfds:{name} ({cache})")
