"""Which clips a run reads: the source's clips of the selected classes, minus unreadable files.

  selection = select(config)        # training; the sweep passes its test set or inference set
  write_data_record(workdir, selection)

Training and the sweep both start here, so both read the same clips, folds and skipped files for
one config.
"""
import dataclasses
import logging
import pathlib

from jaxnoise.data import sources
from jaxnoise.errors import JaxnoiseError
from jaxnoise.runtime import files

DATA_FILE = "data.json"


@dataclasses.dataclass(frozen=True)
class Selection:
  """The clips of ``config.data`` a run uses (no audio decoded yet)."""
  clip_set: sources.ClipSet   # every clip of the source, folds settled
  records: list               # the readable clips of the selected classes
  label_names: tuple
  target_ids: tuple           # positions of the classes in ``clip_set.classes``
  skipped: list               # [{'file', 'reason'}] unreadable files left out (skip_bad_files)

  def describe(self) -> dict:
    """What ``<workdir>/data.json`` and ``run.json`` record about the data."""
    return {"source": self.clip_set.where, "classes": list(self.label_names),
            "target_ids": list(self.target_ids), "clips": len(self.records),
            "split": self.clip_set.split or "the source's own folds",
            "skipped_files": self.skipped}


def select(config, clip_set=None, classes=None) -> Selection:
  """The clips of ``config.data`` (source, classes, folds, unreadable files; no audio decoded).

  Args:
    config: the experiment config.
    clip_set: the clips to select from (default: ``sources.read_source(config.data)``).
    classes: the class subset (default: ``config.data.classes``).
  """
  if clip_set is None:
    clip_set = sources.read_source(config.data)
  classes = config.data.classes if classes is None else classes
  records, label_names, target_ids = sources.select_classes(clip_set, classes,
                                                            config.data.dropped_class)
  records, skipped = sources.screen(records, bool(config.data.get("skip_bad_files", False)))
  if not records:
    raise JaxnoiseError(f"every file of the classes {label_names} in {clip_set.where} was "
                        f"skipped as unreadable: {skipped[:3]}")
  if skipped:
    logging.warning("skipped %d unreadable file(s) (config.data.skip_bad_files): %s",
                    len(skipped), [entry["file"] for entry in skipped[:5]])
  return Selection(clip_set, records, tuple(label_names), tuple(target_ids), skipped)


def write_data_record(workdir, selection: Selection) -> None:
  """``<workdir>/folds.csv`` (the split used) and ``data.json`` (source, classes, skipped files),
  so a run can be traced to the exact clips and folds it read."""
  files.atomic_write_csv(pathlib.Path(workdir) / sources.FOLDS_FILE, sources.FOLDS_COLUMNS,
                         sources.folds_rows(selection.clip_set.clips))
  files.atomic_write_json(pathlib.Path(workdir) / DATA_FILE, selection.describe())
