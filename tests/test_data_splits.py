"""Seeded stratified group k-fold: balance, groups kept whole, determinism, and on ESC-50's names."""
import collections

import numpy as np
import pytest

from jaxnoise.data import esc50, splits
from jaxnoise.errors import ConfigError


def test_one_clip_per_group_splits_every_class_evenly():
  # 19 classes x 8 clips, 4 folds: the closed form is exactly 2 clips of every class per fold.
  labels = [c for c in range(19) for _ in range(8)]
  groups = list(range(len(labels)))
  folds = splits.assign_folds(labels, groups, num_folds=4, seed=0)
  counts = collections.Counter(zip(labels, folds.tolist()))
  assert set(folds.tolist()) == {1, 2, 3, 4}
  assert all(counts[(c, f)] == 2 for c in range(19) for f in (1, 2, 3, 4))


def test_uneven_class_sizes_differ_by_at_most_one_clip_per_fold():
  labels = ["a"] * 7 + ["b"] * 5 + ["c"] * 3
  folds = splits.assign_folds(labels, list(range(15)), num_folds=3, seed=3)
  for label, size in (("a", 7), ("b", 5), ("c", 3)):
    per_fold = [sum(1 for l, f in zip(labels, folds) if l == label and f == k) for k in (1, 2, 3)]
    assert sorted(per_fold) == sorted([size // 3 + (i < size % 3) for i in range(3)])


def test_groups_are_never_split_and_the_split_follows_the_seed():
  rng = np.random.default_rng(1)
  groups = rng.integers(0, 40, size=200)
  labels = groups % 5  # one class per recording, as in ESC-50
  folds = splits.assign_folds(labels, groups, num_folds=5, seed=7)
  for group in set(groups.tolist()):
    assert len(set(folds[groups == group].tolist())) == 1
  np.testing.assert_array_equal(folds, splits.assign_folds(labels, groups, 5, seed=7))
  assert not np.array_equal(folds, splits.assign_folds(labels, groups, 5, seed=8))


def test_shared_esc50_clips_resplit_keeps_source_recordings_together(esc50_dir):
  records = esc50.load_metadata(esc50_dir)
  labels = [r.target for r in records]
  groups = [r.src_file for r in records]
  folds = splits.assign_folds(labels, groups, num_folds=4, seed=0)
  by_source = collections.defaultdict(set)
  for group, fold in zip(groups, folds.tolist()):
    by_source[group].add(fold)
  assert all(len(f) == 1 for f in by_source.values())
  assert set(folds.tolist()) == {1, 2, 3, 4}


def test_impossible_splits_are_refused_with_the_numbers():
  with pytest.raises(ConfigError, match="below 2"):
    splits.assign_folds([0, 1], [0, 1], num_folds=1, seed=0)
  with pytest.raises(ConfigError, match="2 source recording"):
    splits.assign_folds([0, 0, 1], ["x", "x", "y"], num_folds=3, seed=0)
  with pytest.raises(ConfigError, match="3 labels but 2 groups"):
    splits.assign_folds([0, 1, 2], [0, 1], num_folds=2, seed=0)
