"""Noises by name (the sweep's, and training's noise pools), and the realisation each (noise,
realisation, clip) gets.

Names in ``config.sweep.noises`` (and ``config.sweep.noise_paths``):

- ``white``, ``pink``, ``brown``, ``blue``, ``violet``: colored noise drawn on the device from a key,
  shaped by ``config.sweep.colored_generator`` (``jaxnoise.noise.colored``: "psd" or "study").
- ``esc50:<category>``: ESC-50 clips of a class that is not being tested (the defaults: dog, rain,
  car_horn, engine, train), from the dataset's own metadata, or, when the dataset copy lacks the
  class, from ESC-50-named files (``FOLD-SOURCE-TAKE-TARGET.wav``) in ``config.sweep.esc50_noise_dirs``.
- ``NAME=PATH``: a recorded noise called NAME whose recordings are the audio file PATH or every audio
  file under the folder PATH.
- a plain path: a file is one noise named after its stem; a folder with a ``noise.csv`` (columns
  ``file`` and ``category``, as ``../shared/data/noise``) gives one noise per category; any other
  folder gives one noise per audio file.

Recordings of any rate and channel count are mixed down and resampled (``jaxnoise.noise``).

Realisations (``config.sweep.realisations`` K, ``config.sweep.fresh_noise_per_clip``):

- colors, realisation r: the key is ``jax.random.key(seed)`` for r = 0 (exactly the noise
  ``python -m jaxnoise.noise mix --seed`` uses) and ``fold_in(key(seed), r)`` for r > 0; all five
  colors of one realisation are the same white draw shaped five ways. With a fresh realisation per
  clip, clip ``c`` gets ``fold_in(fold_in(key(seed), r), crc32(c's file name))``, stable whatever
  other clips are swept.
- recordings, realisation r: the r-th recording of the type (sorted by path), so a type with fewer
  recordings than K is swept with as many realisations as it has recordings (a warning says so).
  With a fresh realisation per clip, the clip at position i of the sweep gets recording (i + r) mod n.
"""
import csv
import dataclasses
import logging
import pathlib
import re
import zlib

import jax
import numpy as np

from jaxnoise.audio.io import list_audio_files
from jaxnoise.data import esc50
from jaxnoise.errors import AudioError, ConfigError
from jaxnoise.noise import COLORS, band_power, check_generator, colored_noise, load_noise_file

ESC50_PREFIX = "esc50:"
ESC50_FILE_NAME = re.compile(r"^(\d)-(\w+)-([A-Z])-(\d+)\.wav$")


@dataclasses.dataclass(frozen=True)
class NoiseType:
  """One noise of the sweep: a color (and the generator that shapes it), or a pool of recordings."""
  name: str
  color: str | None = None
  recordings: tuple = ()
  generator: str = "psd"

  def realisations(self, requested: int) -> int:
    return requested if self.color else min(requested, len(self.recordings))

  def describe(self) -> dict:
    if self.color:
      return {"name": self.name, "color": self.color, "generator": self.generator}
    return {"name": self.name, "recordings": [str(path) for path in self.recordings]}


def parse_noises(entries, *, records=(), data_root=None, esc50_noise_dirs=(),
                 tested_classes=(), colored_generator="psd") -> list[NoiseType]:
  """Resolves the noise names of the config (module doc) into NoiseTypes.

  Args:
    entries: names from ``config.sweep.noises`` + ``config.sweep.noise_paths``.
    records: every clip of the data (``sources.Clip``, before class selection), for ``esc50:``
      names: the clips whose label is that ESC-50 category.
    data_root: where those clips come from (for messages).
    esc50_noise_dirs: further folders with ESC-50-named files, searched when the copy lacks a class.
    tested_classes: names of the classes under test; using one of them as noise is refused.
    colored_generator: ``config.sweep.colored_generator``, the shaping of every color.

  Raises:
    ConfigError: an unknown name, a missing file or folder, a tested class used as noise, or two
      noises with the same name.
  """
  check_generator(colored_generator)
  noises = []
  for entry in entries:
    entry = str(entry).strip()
    if not entry:
      raise ConfigError("config.sweep.noises holds an empty name")
    if entry in COLORS:
      noises.append(NoiseType(entry, color=entry, generator=colored_generator))
    elif entry.startswith(ESC50_PREFIX):
      noises.append(esc50_noise(entry, records, data_root, esc50_noise_dirs, tested_classes))
    elif "=" in entry:
      name, path = (part.strip() for part in entry.split("=", 1))
      noises.append(NoiseType(name, recordings=tuple(recordings_under(path, entry))))
    else:
      noises.extend(noises_from_path(entry))
  names = [noise.name for noise in noises]
  duplicates = sorted({name for name in names if names.count(name) > 1})
  if duplicates:
    raise ConfigError(f"config.sweep.noises gives several noises the name(s) {duplicates}; "
                      "name them apart with NAME=PATH")
  if not noises:
    raise ConfigError("config.sweep.noises is empty: give at least one noise "
                      f"({', '.join(COLORS)}, esc50:<class>, or a file or folder)")
  return noises


def recordings_under(path, entry) -> list[pathlib.Path]:
  path = pathlib.Path(path).expanduser()
  if not path.exists():
    raise ConfigError(f"noise {entry!r}: {path} does not exist; expected a color "
                      f"({', '.join(COLORS)}), esc50:<class>, NAME=PATH or an audio file or folder")
  return list_audio_files([path])


def noises_from_path(entry) -> list[NoiseType]:
  """A file -> one noise; a folder -> one per noise.csv category, else one per audio file."""
  path = pathlib.Path(entry).expanduser()
  files = recordings_under(path, entry)
  if path.is_file():
    return [NoiseType(path.stem, recordings=(path,))]
  table = path / "noise.csv"
  if table.is_file():
    with open(table, newline="", encoding="utf-8") as handle:
      rows = list(csv.DictReader(handle))
    if not rows or not {"file", "category"} <= set(rows[0]):
      raise ConfigError(f"{table} must have the columns 'file' and 'category'")
    pools = {}
    for row in rows:
      recording = path / row["file"]
      if not recording.is_file():
        raise ConfigError(f"{table} lists {row['file']!r}, which is not in {path}")
      pools.setdefault(row["category"], []).append(recording)
    return [NoiseType(category, recordings=tuple(sorted(pool))) for category, pool in pools.items()]
  return [NoiseType(file.stem, recordings=(file,)) for file in files]


def esc50_noise(entry, records, data_root, esc50_noise_dirs, tested_classes) -> NoiseType:
  category = entry[len(ESC50_PREFIX):]
  if category not in esc50.CLASS_NAMES:
    raise ConfigError(f"noise {entry!r}: {category!r} is not an ESC-50 class (e.g. dog, rain, "
                      "car_horn, engine, train)")
  target = esc50.CLASS_NAMES.index(category)
  if category in tested_classes:
    raise ConfigError(f"noise {entry!r}: class {category} ({target}) is one of the classes under "
                      "test, so it cannot also be the background noise")
  found = sorted(pathlib.Path(record.path) for record in records if record.category == category)
  if not found:
    for folder in esc50_noise_dirs:
      folder = pathlib.Path(folder).expanduser()
      if not folder.is_dir():
        raise ConfigError(f"config.sweep.esc50_noise_dirs: {folder} is not a folder")
      found.extend(sorted(path for path in folder.rglob("*.wav")
                          if (match := ESC50_FILE_NAME.match(path.name))
                          and int(match.group(4)) == target))
  if not found:
    raise ConfigError(
        f"noise {entry!r}: no ESC-50 clip of class {category} (target {target}) in "
        f"{data_root} nor in config.sweep.esc50_noise_dirs={list(esc50_noise_dirs)}; use the full "
        "ESC-50, or add a folder of ESC-50-named clips of that class (such as "
        "../shared/data/noise/esc50) to config.sweep.esc50_noise_dirs, or choose other noises "
        "(config.sweep.noises)")
  return NoiseType(entry, recordings=tuple(found))


@dataclasses.dataclass(frozen=True)
class Unit:
  """One resumable piece of the sweep: the clean pass, or one realisation of one noise."""
  noise: NoiseType | None
  realisation: int = 0

  @property
  def name(self) -> str:
    return self.noise.name if self.noise else "clean"

  @property
  def identifier(self) -> str:
    """A file-name-safe id, distinct for distinct units."""
    if self.noise is None:
      return "clean"
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.noise.name)
    digest = zlib.crc32(self.noise.name.encode("utf-8")) & 0xFFFFFFFF
    return f"{slug}-{digest:08x}-r{self.realisation}"


def make_units(noises, realisations: int) -> list[Unit]:
  """The clean pass, then every realisation of every noise."""
  units = [Unit(None)]
  for noise in noises:
    count = noise.realisations(realisations)
    if count < realisations:
      logging.warning("noise %s has %d recording(s): swept with %d realisation(s), not %d",
                      noise.name, len(noise.recordings), count, realisations)
    units.extend(Unit(noise, r) for r in range(count))
  return units


def realisation_key(seed: int, realisation: int) -> jax.Array:
  key = jax.random.key(seed)
  return key if realisation == 0 else jax.random.fold_in(key, realisation)


def clip_number(file_name: str) -> int:
  """A stable 31-bit number for a clip, from its file name (the per-clip noise stream)."""
  return zlib.crc32(pathlib.Path(file_name).name.encode("utf-8")) & 0x7FFFFFFF


def nominal_noise(noise: NoiseType, realisation: int, seed: int, sample_rate: int,
                  num_samples: int) -> np.ndarray:
  """``[num_samples]`` float32: the realisation mixed into every clip (the study's protocol)."""
  if noise.color:
    return np.asarray(colored_noise(realisation_key(seed, realisation), num_samples, noise.color,
                                    generator=noise.generator))
  return load_noise_file(noise.recordings[realisation], sample_rate, num_samples)


class NoiseMaker:
  """Noise arrays of the units of one sweep, for an engine's chunks of clips.

  Args:
    engine: the SweepEngine (chunking, devices, band power).
    file_names: ``[clips]`` file names of the swept clips, in sweep order.
    seed: ``config.seed``.
    fresh_per_clip: ``config.sweep.fresh_noise_per_clip``.
  """

  def __init__(self, engine, file_names, seed: int, fresh_per_clip: bool):
    self.engine = engine
    self.file_names = list(file_names)
    self.seed = seed
    self.fresh_per_clip = fresh_per_clip
    self._recordings = {}

  def recording(self, path) -> np.ndarray:
    """A recording at the model's rate and the clip length (loaded and checked once per sweep)."""
    if path not in self._recordings:
      self._recordings[path] = self.audible(
          load_noise_file(path, self.engine.spec.sample_rate, self.engine.num_samples), path)
    return self._recordings[path]

  def load_recordings(self, units):
    """Loads and checks every recording ``units`` mix in, so that an unreadable or silent file
    stops the sweep before its first unit rather than midway."""
    for unit in units:
      if unit.noise is not None and not unit.noise.color:
        for path in dict.fromkeys(self.recording_paths(unit)):
          self.recording(path)

  def audible(self, noise: np.ndarray, path) -> np.ndarray:
    """``noise`` unchanged if it has power in the model's band; AudioError otherwise, because no
    gain could then set any SNR and every "noisy" row would silently repeat the clean one."""
    spec = self.engine.spec
    if not float(band_power(noise, spec.sample_rate, spec.band)) > 0:
      raise AudioError(f"noise recording {path} has no power in the band {spec.band} Hz of the "
                       f"{spec.arch} model (at {spec.sample_rate} Hz), so no gain can set an SNR "
                       "with it; remove it from config.sweep.noises / config.sweep.noise_paths")
    return noise

  def sources(self, unit: Unit) -> list[str]:
    """``[clips]`` description of the noise each clip got (the ``noise_source`` column)."""
    if unit.noise is None:
      return [""] * len(self.file_names)
    if unit.noise.color:
      base = f"seed {self.seed} realisation {unit.realisation}"
      if not self.fresh_per_clip:
        return [base] * len(self.file_names)
      return [f"{base} clip {clip_number(name)}" for name in self.file_names]
    return [pathlib.Path(path).name for path in self.recording_paths(unit)]

  def recording_paths(self, unit: Unit) -> list:
    pool = unit.noise.recordings
    if not self.fresh_per_clip:
      return [pool[unit.realisation]] * len(self.file_names)
    return [pool[(position + unit.realisation) % len(pool)]
            for position in range(len(self.file_names))]

  def for_unit(self, unit: Unit):
    """``(noise_for_chunk, per_clip)`` for ``engine.run``: ``noise_for_chunk(index)`` gives the
    ``(noise, noise_power)`` device arrays of chunk ``index``."""
    engine = self.engine
    if unit.noise is None:
      # The clean pass is swept at SNR +inf, where the gain is exactly 0.
      silence = engine.put_replicated(np.zeros((1, engine.num_samples), np.float32))
      unit_power = engine.put_replicated(np.ones((1,), np.float32))
      return (lambda index: (silence, unit_power)), False
    if not self.fresh_per_clip:
      noise = (nominal_noise(unit.noise, unit.realisation, self.seed, engine.spec.sample_rate,
                             engine.num_samples) if unit.noise.color
               else self.recording(unit.noise.recordings[unit.realisation]))
      on_device = engine.put_replicated(noise[None])
      power = engine.noise_power(on_device)
      return (lambda index: (on_device, power)), False

    paths = None if unit.noise.color else self.recording_paths(unit)

    def per_clip(index):
      rows = engine.chunk_slice(index)
      if unit.noise.color:
        numbers = [clip_number(name) for name in self.file_names[rows]]
        noise = engine.colored_per_clip(realisation_key(self.seed, unit.realisation), numbers,
                                        unit.noise.color, unit.noise.generator)
      else:
        noise = engine.put_per_clip(np.stack([self.recording(path) for path in paths[rows]]))
      return noise, engine.noise_power(noise)
    return per_clip, True
