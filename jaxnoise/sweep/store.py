"""The sweep's results on disk: tidy tables, written atomically, resumable unit by unit.

Layout of a workdir::

  results.csv    one row per (model, noise, realisation, snr_db, clip): the predicted and the true class
  accuracy.csv   one row per (model, noise, snr_db): accuracy, n, and the 95% interval over realisations
  run.json       config, model checksum, versions, seeds, devices, timings
  sweep/fingerprint.json   what the units below were computed for
  sweep/units/<unit>.csv   the rows of one finished unit (a noise realisation, or the clean pass)
  sweep/units/<unit>.npz   its logits, when ``config.sweep.save_logits``

Every file is written to a temporary name in the same folder and renamed into place, so a killed run
leaves either the old file or the new one, never half of one. A unit's file exists only once all its
rows were computed; a rerun skips those units and recomputes the rest. A workdir whose fingerprint
differs (other SNRs, clips, noises, model or seed) is refused rather than silently mixed.
"""
import io
import json
import pathlib

import numpy as np

from jaxnoise.errors import ConfigError
from jaxnoise.runtime.files import (atomic_write_bytes, atomic_write_csv, atomic_write_json,
                                    read_csv, remove_stale_temporaries)

RESULT_COLUMNS = ("model", "noise", "realisation", "snr_db", "fold", "file", "target",
                  "target_name", "predicted", "predicted_name", "noise_source")
ACCURACY_COLUMNS = ("model", "noise", "snr_db", "accuracy", "n", "realisations", "ci95_low",
                    "ci95_high")
INTEGER_COLUMNS = ("realisation", "fold", "target", "predicted")
RESULTS_FILE = "results.csv"
ACCURACY_FILE = "accuracy.csv"
RUN_FILE = "run.json"


def format_snr(snr) -> str:
  """The ``snr_db`` cell: '' for clean rows (snr None), else the shortest exact decimal ('-10', '2.5')."""
  return "" if snr is None else f"{float(snr):g}"


def to_columns(rows) -> dict:
  """Rows of ``results.csv`` -> ``{column: np.ndarray}``; integer columns as int64, others as str."""
  columns = {}
  for name in RESULT_COLUMNS:
    values = [row[name] for row in rows]
    columns[name] = (np.asarray(values, np.int64) if name in INTEGER_COLUMNS
                     else np.asarray(values, dtype=object).astype(str))
  return columns


def read_results(workdir) -> dict:
  """The columns of ``workdir/results.csv``."""
  path = pathlib.Path(workdir) / RESULTS_FILE
  if not path.is_file():
    raise ConfigError(f"{path} does not exist: run the 'sweep' mode first")
  return to_columns(read_csv(path))


def read_accuracy(workdir) -> list[dict]:
  path = pathlib.Path(workdir) / ACCURACY_FILE
  if not path.is_file():
    raise ConfigError(f"{path} does not exist: run the 'sweep' mode first")
  return read_csv(path)


class UnitStore:
  """The finished units of one sweep in ``workdir/sweep``.

  Args:
    workdir: the run's folder.
    fingerprint: JSON-able description of everything the results depend on; a workdir holding
      units of another fingerprint is refused.
  """

  def __init__(self, workdir, fingerprint: dict):
    self.directory = pathlib.Path(workdir) / "sweep"
    self.units_directory = self.directory / "units"
    self.fingerprint = json.loads(json.dumps(fingerprint, default=str))
    fingerprint_path = self.directory / "fingerprint.json"
    # A workdir whose earlier run stopped before finishing any unit holds nothing to protect.
    if fingerprint_path.is_file() and any(self.units_directory.glob("*.csv")):
      stored = json.loads(fingerprint_path.read_text(encoding="utf-8"))
      if stored != self.fingerprint:
        changed = sorted(key for key in set(stored) | set(self.fingerprint)
                         if stored.get(key) != self.fingerprint.get(key))
        raise ConfigError(
            f"{self.directory} holds a sweep made with other settings (they differ in "
            f"{', '.join(changed)}); use another --workdir or delete {self.directory} to start over")

  def prepare(self):
    """Records the fingerprint, and removes the temporary files of a run killed mid-write."""
    path = self.directory / "fingerprint.json"
    if not path.is_file() or json.loads(path.read_text(encoding="utf-8")) != self.fingerprint:
      atomic_write_json(path, self.fingerprint)
    # The workdir may be a folder of the user's: only temporaries of its result files go.
    remove_stale_temporaries(self.directory.parent, (RESULTS_FILE, ACCURACY_FILE, RUN_FILE))
    remove_stale_temporaries(self.units_directory)

  def path(self, unit: str) -> pathlib.Path:
    return self.units_directory / f"{unit}.csv"

  def is_done(self, unit: str) -> bool:
    return self.path(unit).is_file()

  def save(self, unit: str, rows, logits=None):
    """Stores a finished unit: its logits first, so a present CSV always has them."""
    if logits is not None:
      buffer = io.BytesIO()
      np.savez(buffer, logits=logits)
      atomic_write_bytes(self.units_directory / f"{unit}.npz", buffer.getvalue())
    atomic_write_csv(self.path(unit), RESULT_COLUMNS, rows)

  def load(self, unit: str) -> list[dict]:
    return read_csv(self.path(unit))


def write_tables(workdir, rows, accuracy_rows, run_metadata):
  """Writes ``results.csv``, ``accuracy.csv`` and ``run.json`` into ``workdir`` (each atomically)."""
  workdir = pathlib.Path(workdir)
  atomic_write_csv(workdir / RESULTS_FILE, RESULT_COLUMNS, rows)
  atomic_write_csv(workdir / ACCURACY_FILE, ACCURACY_COLUMNS, accuracy_rows)
  atomic_write_json(workdir / RUN_FILE, run_metadata)
