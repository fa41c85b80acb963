"""Generic machinery for mapping an upstream state dict onto Flax variables.

A family converter reads tensors through a ``StateDictReader`` (which records every key it used,
skipped or could not find) and returns a Flax variable tree. ``finish_conversion`` then checks the
tree against the architecture's own shapes and raises one ConversionError listing every unknown,
missing or mis-shaped key, so nothing is dropped silently.
"""
import fnmatch

import jax
import numpy as np

from jaxnoise.errors import ConversionError


class StateDictReader:
  """Upstream tensors by key, with bookkeeping of what the converter consumed."""

  def __init__(self, tensors: dict, source: str):
    self.tensors = dict(tensors)
    self.source = source
    self.used = set()
    self.skipped = {}
    self.missing = []

  def has(self, key: str) -> bool:
    return key in self.tensors

  def take(self, key: str) -> np.ndarray | None:
    """The tensor at ``key`` as float32 (recorded as used); None and recorded missing if absent."""
    if key not in self.tensors:
      self.missing.append(key)
      return None
    self.used.add(key)
    return np.asarray(self.tensors[key], dtype=np.float32)

  def conv(self, key: str) -> np.ndarray | None:
    """A PyTorch conv kernel ``(out, in, kh, kw)`` as Flax ``(kh, kw, in, out)``."""
    weight = self.take(key)
    return None if weight is None else np.transpose(weight, (2, 3, 1, 0))

  def conv1d(self, key: str) -> np.ndarray | None:
    """A PyTorch Conv1d kernel ``(out, in, k)`` as Flax ``(k, in, out)``."""
    weight = self.take(key)
    return None if weight is None else np.transpose(weight, (2, 1, 0))

  def linear(self, key: str) -> np.ndarray | None:
    """A PyTorch Linear weight ``(out, in)`` as a Flax Dense kernel ``(in, out)``."""
    weight = self.take(key)
    return None if weight is None else weight.T

  def dense(self, prefix: str, bias: bool = True) -> dict:
    params = {"kernel": self.linear(prefix + ".weight")}
    if bias:
      params["bias"] = self.take(prefix + ".bias")
    return params

  def batch_norm(self, prefix: str) -> tuple[dict, dict]:
    """BatchNorm ``prefix.{weight,bias,running_mean,running_var}`` -> (params, batch_stats).

    ``num_batches_tracked`` is skipped: Flax keeps no step count.
    """
    params = {"scale": self.take(prefix + ".weight"), "bias": self.take(prefix + ".bias")}
    stats = {"mean": self.take(prefix + ".running_mean"),
             "var": self.take(prefix + ".running_var")}
    if self.has(prefix + ".num_batches_tracked"):
      self.skip(prefix + ".num_batches_tracked", reason="BatchNorm step counter (unused in Flax)")
    return params, stats

  def layer_norm(self, prefix: str) -> dict:
    return {"scale": self.take(prefix + ".weight"), "bias": self.take(prefix + ".bias")}

  def skip(self, pattern: str, reason: str) -> list:
    """Marks keys matching the glob ``pattern`` as deliberately not converted, with a reason."""
    matched = [key for key in self.tensors if fnmatch.fnmatchcase(key, pattern)]
    for key in matched:
      self.skipped[key] = reason
    return matched

  def unused(self) -> list:
    return sorted(set(self.tensors) - self.used - set(self.skipped))


def _flatten(tree) -> dict:
  return {"/".join(str(getattr(k, "key", k)) for k in path): leaf
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _unflatten(flat: dict) -> dict:
  tree = {}
  for path, leaf in flat.items():
    node = tree
    parts = path.split("/")
    for part in parts[:-1]:
      node = node.setdefault(part, {})
    node[parts[-1]] = leaf
  return tree


def finish_conversion(reader: StateDictReader, variables: dict, expected: dict, *,
                      head_paths=(), fresh_head=None) -> dict:
  """Checks ``variables`` against ``expected`` (from ``jax.eval_shape(spec.init, ...)``).

  Args:
    reader: the reader the converter used; its unused and missing keys are errors.
    variables: the converted tree (leaves may be None where a key was missing).
    expected: the architecture's tree of ShapeDtypeStructs.
    head_paths: glob patterns of flattened variable paths ('params/head/kernel') that make up the
      classifier head.
    fresh_head: when given (``--allow-head-mismatch``), a tree of freshly initialised variables whose
      head leaves replace the upstream head wherever shapes differ.

  Returns:
    The variable tree as float32 numpy arrays, ready to save.
  """
  converted = {k: v for k, v in _flatten(variables).items() if v is not None}
  wanted = _flatten(expected)
  problems = []
  if reader.missing:
    problems.append(f"missing upstream keys: {sorted(set(reader.missing))}")
  unused = reader.unused()
  if unused:
    problems.append(f"unknown upstream keys (not part of this architecture): {unused}")
  not_filled = sorted(set(wanted) - set(converted))
  extra = sorted(set(converted) - set(wanted))
  if extra:
    problems.append(f"converter produced variables the model does not have: {extra}")
  fresh = _flatten(fresh_head) if fresh_head is not None else {}
  misshaped, replaced = [], []
  for path in sorted(set(wanted) & set(converted)):
    want = tuple(wanted[path].shape)
    have = tuple(np.shape(converted[path]))
    if want == have:
      continue
    if fresh and any(fnmatch.fnmatchcase(path, pattern) for pattern in head_paths):
      converted[path] = np.asarray(fresh[path])
      replaced.append(path)
    else:
      misshaped.append(f"{path}: upstream {have} != model {want}")
  if misshaped:
    hint = (" (a different class count? pass --allow-head-mismatch to start a new head)"
            if any(any(fnmatch.fnmatchcase(m.split(':')[0], p) for p in head_paths)
                   for m in misshaped) else "")
    problems.append("mis-shaped: " + "; ".join(misshaped) + hint)
  if not_filled and not reader.missing:
    problems.append(f"model variables with no upstream source: {not_filled}")
  if problems:
    raise ConversionError(f"cannot convert {reader.source}:\n  - " + "\n  - ".join(problems))
  return _unflatten({k: np.asarray(v, dtype=wanted[k].dtype) for k, v in converted.items()})
