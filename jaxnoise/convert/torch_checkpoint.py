"""Reading upstream PyTorch checkpoint files into flat ``{key: numpy array}`` dicts.

torch is imported here only: it is the optional ``convert`` extra.
"""
import pathlib

import numpy as np

from jaxnoise.errors import ConversionError


def _import_torch():
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise ConversionError(
        "reading PyTorch checkpoints needs torch: pip install 'jaxnoise[convert]' "
        "(CPU build torch==2.13.0)") from None
  return torch


def load_torch_file(path) -> object:
  """Loads a ``torch.save`` file on the CPU; a clear ConversionError for missing or broken files."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise ConversionError(f"checkpoint {path} does not exist")
  if path.stat().st_size == 0:
    raise ConversionError(f"checkpoint {path} is empty (0 bytes)")
  torch = _import_torch()
  try:
    return torch.load(path, map_location="cpu", weights_only=True)
  except Exception as first_error:  # pylint: disable=broad-except
    # Lightning checkpoints can hold callback objects that weights_only refuses; those files come
    # from the model's authors, so retry with full unpickling only for that reason.
    if "weights_only" not in str(first_error) and "Unsupported global" not in str(first_error):
      raise ConversionError(f"cannot read {path} as a PyTorch checkpoint (truncated or not a "
                            f"torch.save file?): {type(first_error).__name__}: "
                            f"{str(first_error).splitlines()[0]}") from None
    try:
      return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # pylint: disable=broad-except
      raise ConversionError(f"cannot read {path} as a PyTorch checkpoint: "
                            f"{type(error).__name__}: {error}") from None


def to_numpy_state_dict(mapping, source: str) -> dict:
  """``{key: torch.Tensor}`` -> ``{key: np.ndarray}``; non-tensor entries are an error."""
  torch = _import_torch()
  if not isinstance(mapping, dict):
    raise ConversionError(f"{source}: expected a dict of tensors, found {type(mapping).__name__}")
  arrays = {}
  for key, value in mapping.items():
    if not isinstance(value, torch.Tensor):
      raise ConversionError(f"{source}: entry {key!r} is a {type(value).__name__}, not a tensor")
    arrays[key] = value.detach().cpu().numpy()
  return arrays


def read_state_dict(path, wrapper_keys=("state_dict", "model"), strip_prefixes=()) -> dict:
  """The model's tensors from an upstream checkpoint file, as numpy arrays.

  Accepts a bare state dict, or a dict wrapping it under one of ``wrapper_keys`` (PANNs and the
  TFNet repo use 'model', Lightning 'state_dict'). Keys starting with one of ``strip_prefixes``
  (e.g. Lightning's 'sed_model.') lose that prefix.
  """
  raw = load_torch_file(path)
  if not isinstance(raw, dict):
    raise ConversionError(f"{path}: expected a dict, found {type(raw).__name__}")
  state = raw
  for key in wrapper_keys:
    if key in raw and isinstance(raw[key], dict):
      state = raw[key]
      break
  arrays = to_numpy_state_dict(state, str(path))
  stripped = {}
  for key, value in arrays.items():
    for prefix in strip_prefixes:
      if key.startswith(prefix):
        key = key[len(prefix):]
        break
    stripped[key] = value
  return stripped


def as_float32(array: np.ndarray) -> np.ndarray:
  return np.asarray(array, dtype=np.float32)
