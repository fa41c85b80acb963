"""Seeded, stratified k-fold splits that keep the clips of one source recording together.

Datasets without folds (a folder per class, a manifest without a fold column) and datasets whose
folds are not usable as they are (the shared ESC-50 copy holds one fold only) are re-split here.
Clips cut from one recording must not sit on both sides of a split: their near-identical audio
would leak the test fold into training, as ESC-50's own folds are built to avoid (its
``src_file`` column).
"""
import dataclasses
from typing import Hashable, Sequence

import numpy as np

from jaxnoise.errors import ConfigError


def assign_folds(labels: Sequence[Hashable], groups: Sequence[Hashable], num_folds: int,
                 seed: int) -> np.ndarray:
  """Assigns every clip a fold in ``1..num_folds``.

  Groups (source recordings) are dealt to folds class by class: each class's groups in a seeded
  random order, largest first, each to the fold holding the fewest clips of that class so far
  (ties: fewest clips overall, then the lowest fold). A class with ``n`` clips in groups of one
  clip each therefore gets ``floor(n/k)`` or ``ceil(n/k)`` clips in every fold. A group whose clips
  carry several labels is dealt with its most frequent label (ties: the first seen).

  Args:
    labels: ``[clips]`` class label of each clip.
    groups: ``[clips]`` source-recording id of each clip (use the clip's own path when unknown).
    num_folds: k, at least 2.
    seed: the split is a pure function of the inputs and this seed.

  Returns:
    ``[clips]`` int array of folds, 1-based like ESC-50's.

  Raises:
    ConfigError: ``num_folds`` below 2, more folds than groups, or mismatched lengths.
  """
  labels, groups = list(labels), list(groups)
  if len(labels) != len(groups):
    raise ConfigError(f"assign_folds: {len(labels)} labels but {len(groups)} groups")
  if num_folds < 2:
    raise ConfigError(f"number of folds {num_folds} is below 2: a split needs a train and a test "
                      "side")
  members: dict = {}
  for index, group in enumerate(groups):
    members.setdefault(group, []).append(index)
  if len(members) < num_folds:
    raise ConfigError(f"cannot split {len(members)} source recording(s) into {num_folds} folds: "
                      "every fold needs at least one")

  group_label = {}
  for group, indices in members.items():
    counts: dict = {}
    for index in indices:
      counts[labels[index]] = counts.get(labels[index], 0) + 1
    group_label[group] = max(counts, key=counts.get)  # dicts keep first-seen order on ties

  rng = np.random.default_rng(seed)
  per_class_count = {}
  total_count = np.zeros(num_folds, dtype=np.int64)
  folds = np.zeros(len(labels), dtype=np.int64)
  # Classes in first-seen order and groups in a seeded order make the split independent of how
  # Python hashes the labels.
  class_order = list(dict.fromkeys(group_label[g] for g in members))
  for label in class_order:
    class_groups = [g for g in members if group_label[g] == label]
    order = rng.permutation(len(class_groups))
    shuffled = [class_groups[i] for i in order]
    shuffled.sort(key=lambda g: -len(members[g]))  # stable: ties keep the seeded order
    class_count = per_class_count.setdefault(label, np.zeros(num_folds, dtype=np.int64))
    for group in shuffled:
      fold = min(range(num_folds), key=lambda f: (class_count[f], total_count[f], f))
      size = len(members[group])
      class_count[fold] += size
      total_count[fold] += size
      folds[members[group]] = fold + 1
  return folds


FOLDS_FILE = "folds.csv"


def resplit_records(records, data_config) -> list:
  """ESC-50 ``records`` with the folds of ``config.data.split_folds`` (0: their own folds).

  k >= 2 re-splits every record into k folds with ``assign_folds``, stratified by target and keeping
  the clips of one ``src_file`` together, seeded by ``config.data.split_seed``. The split depends on
  the whole metadata only, so training and sweep (and any class subset) see the same folds.
  """
  num_folds = int(data_config.get("split_folds", 0) or 0)
  if not num_folds:
    return list(records)
  folds = assign_folds([r.target for r in records], [r.src_file for r in records], num_folds,
                       int(data_config.get("split_seed", 0)))
  return [dataclasses.replace(record, fold=int(fold)) for record, fold in zip(records, folds)]


def write_folds(path, records) -> None:
  """The split used, one row per clip: ``filename, fold, target, src_file``."""
  from jaxnoise.sweep import store  # pylint: disable=import-outside-toplevel
  rows = [{"filename": r.filename, "fold": r.fold, "target": r.target, "src_file": r.src_file}
          for r in sorted(records, key=lambda r: (r.fold, r.filename))]
  store.atomic_write_csv(path, ("filename", "fold", "target", "src_file"), rows)
