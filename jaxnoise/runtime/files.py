"""Files that a killed run never leaves half-written, and reading CSV tables back.

Every file is written to a temporary name in the same folder and renamed into place (``os.replace``
is atomic), so a reader finds the old file or the new one. Both stages and the report write this
way.
"""
import csv
import io
import json
import os
import pathlib
import shutil
import tempfile

import numpy as np


def atomic_write_bytes(path, data: bytes):
  """Writes ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
  try:
    with os.fdopen(handle, "wb") as stream:
      stream.write(data)
      stream.flush()
      os.fsync(stream.fileno())
    os.replace(temporary, path)
  except BaseException:
    if os.path.exists(temporary):
      os.unlink(temporary)
    raise


def remove_stale_temporaries(directory, names=("*",)):
  """Deletes the ``.<name>.*.tmp`` files of ``atomic_write_bytes`` (and the staging folders of
  ``jaxnoise.models.store.save_model``) that a process killed before renaming left in
  ``directory``, for the file ``names`` given (default: all, in folders jaxnoise owns); only the
  writing process calls this, before it writes there again."""
  directory = pathlib.Path(directory)
  if directory.is_dir():
    for leftover in (path for name in names for path in directory.glob(f".{name}.*.tmp")):
      if leftover.is_dir():
        shutil.rmtree(leftover, ignore_errors=True)
      else:
        leftover.unlink(missing_ok=True)


def atomic_write_text(path, text: str):
  atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, value):
  atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


def format_cell(value) -> str:
  """CSV text of a value: floats with enough digits to round-trip, NaN as the empty cell."""
  if isinstance(value, (float, np.floating)):
    return "" if np.isnan(value) else repr(float(value))
  if isinstance(value, (np.integer,)):
    return str(int(value))
  return str(value)


def csv_text(columns, rows) -> str:
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator="\n")
  writer.writerow(columns)
  for row in rows:
    writer.writerow([format_cell(row[name]) for name in columns])
  return buffer.getvalue()


def atomic_write_csv(path, columns, rows):
  """Writes dict ``rows`` as CSV with the header ``columns`` (atomically)."""
  atomic_write_text(path, csv_text(columns, rows))


def read_csv(path) -> list[dict]:
  with open(path, newline="", encoding="utf-8") as handle:
    return list(csv.DictReader(handle))
