"""Reading a dataset's metadata table: every row with the ``file:line`` that names it in errors."""
import csv
import pathlib

from jaxnoise.errors import JaxnoiseError


def read_rows(path, columns, dataset: str) -> list[tuple[str, dict]]:
  """``[(where, row)]`` of the CSV ``path``, which must have ``columns``.

  Raises:
    JaxnoiseError: a required column is missing (the message names them and ``dataset``).
  """
  path = pathlib.Path(path)
  with open(path, newline="", encoding="utf-8") as handle:
    reader = csv.DictReader(handle)
    missing = [c for c in columns if c not in (reader.fieldnames or ())]
    if missing:
      raise JaxnoiseError(f"{path} lacks the column(s) {missing}; expected the {dataset} "
                          f"columns {list(columns)}")
    return [(f"{path}:{line}", row) for line, row in enumerate(reader, start=2)]
