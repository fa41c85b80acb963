"""Key maps for the CNN families: the TFNet repository's CNN10 and TFNet, and PANNs' Cnn10.

Checkpoint layouts read: the TFNet repository's ``{'iteration', 'model', 'optimizer'}`` and PANNs'
``{'iteration', 'model'}`` (weights under 'model'), or a bare state dict.

Upstream keys that are deliberately not converted, each with its reason:
  cnn10: ``fc2.*``, a layer defined but never called in forward.
  tfnet: per block ``bnz.*``, ``fc1.*``, ``fc2.*``, ``downsample.weight``, ``bn.*``: defined but
    never called in forward.
  panns_cnn10: ``spectrogram_extractor.stft.conv_{real,imag}.weight`` (windowed DFT kernels) and
    ``logmel_extractor.melW`` (mel filterbank), frozen tensors that the frontend recomputes; their
    shapes are checked against the frontend (n_fft 1024, 64 mels), and the test suite checks their
    values.
  every BatchNorm: ``num_batches_tracked``.

The networks run on ``[batch, mel, time, channels]`` maps (``jaxnoise.models.layers``), so each
PyTorch conv kernel ``(out, in, time, mel)`` becomes ``(mel, time, in, out)``.
"""
import numpy as np

from jaxnoise.convert.keymap import StateDictReader
from jaxnoise.convert.torch_checkpoint import read_state_dict
from jaxnoise.errors import ConversionError

ARCHS = ("cnn10", "tfnet", "panns_cnn10")
BLOCKS = (1, 2, 3, 4)
HEAD_PATHS = {
    "cnn10": ("params/fc/*",),
    "tfnet": ("params/fc/*",),
    "panns_cnn10": ("params/fc_audioset/*",),
}
_HEAD_KEYS = {"cnn10": "fc.weight", "tfnet": "fc.weight", "panns_cnn10": "fc_audioset.weight"}

UNUSED_IN_FORWARD = "defined upstream but never used in its forward pass"
PANNS_FRONTEND_SHAPES = {
    # torchlibrosa's DFT as a Conv1d: (n_fft // 2 + 1, 1, n_fft) for n_fft 1024.
    "spectrogram_extractor.stft.conv_real.weight": (513, 1, 1024),
    "spectrogram_extractor.stft.conv_imag.weight": (513, 1, 1024),
    "logmel_extractor.melW": (513, 64),
}


def read_tensors(path) -> dict:
  """The state dict of a TFNet-repo or PANNs checkpoint file (or of a bare state dict file)."""
  return read_state_dict(path, wrapper_keys=("model",))


def infer_config(arch: str, tensors: dict) -> dict:
  """``{'num_classes': ...}`` from the classifier head's weight."""
  key = _HEAD_KEYS.get(arch)
  if key is None:
    raise ConversionError(f"the CNN converter handles {ARCHS}, not {arch!r}")
  if key not in tensors:
    raise ConversionError(f"no {key!r} in the checkpoint: not a {arch} state dict? "
                          f"(first keys: {sorted(tensors)[:5]})")
  return {"num_classes": int(np.shape(tensors[key])[0])}


def to_flax(arch: str, reader: StateDictReader, config: dict) -> dict:
  del config  # every shape is checked against the built model by finish_conversion
  if arch == "cnn10":
    return _tfnet_repo_cnn10(reader)
  if arch == "tfnet":
    return _tfnet(reader)
  if arch == "panns_cnn10":
    return _panns_cnn10(reader)
  raise ConversionError(f"the CNN converter handles {ARCHS}, not {arch!r}")


def _conv(reader: StateDictReader, key: str):
  """PyTorch ``(out, in, time, mel)`` -> Flax ``(mel, time, in, out)`` for the time-inner layout."""
  kernel = reader.conv(key)  # (time, mel, in, out)
  return None if kernel is None else np.swapaxes(kernel, 0, 1)


def _new_scope() -> dict:
  return {"params": {}, "batch_stats": {}}


def _put_batch_norm(scope: dict, name: str, reader: StateDictReader, prefix: str):
  scope["params"][name], scope["batch_stats"][name] = reader.batch_norm(prefix)


def _nest(variables: dict, name: str, scope: dict):
  """Places a submodule's variables under ``name`` in every collection it has."""
  for collection, tree in scope.items():
    if tree:
      variables[collection][name] = tree


def _conv_block(reader: StateDictReader, prefix: str) -> dict:
  """ConvBlock ``prefix`` (conv1, bn1, conv2, bn2) -> {'params': ..., 'batch_stats': ...}."""
  scope = _new_scope()
  for index in (1, 2):
    scope["params"][f"conv{index}"] = {"kernel": _conv(reader, f"{prefix}.conv{index}.weight")}
    _put_batch_norm(scope, f"bn{index}", reader, f"{prefix}.bn{index}")
  return scope


def _tfnet_repo_cnn10(reader: StateDictReader) -> dict:
  variables = _new_scope()
  for block in BLOCKS:
    _nest(variables, f"conv_block{block}", _conv_block(reader, f"conv_block{block}"))
  variables["params"]["fc"] = reader.dense("fc")
  for key in ("fc2.weight", "fc2.bias"):
    reader.skip(key, UNUSED_IN_FORWARD)
  return variables


def _tfnet(reader: StateDictReader) -> dict:
  variables = _new_scope()
  for block in BLOCKS:
    prefix = f"tfblock{block}"
    scope = _new_scope()
    for name in ("conv1", "conv2", "conv3", "conv4"):
      scope["params"][name] = {"kernel": _conv(reader, f"{prefix}.{name}.weight")}
    for name in ("bn1", "bn2", "bnx", "bny", "bna", "bnb"):
      _put_batch_norm(scope, name, reader, f"{prefix}.{name}")
    scope["params"]["alpha"] = reader.take(f"{prefix}.alpha")
    for unused in ("bnz.*", "fc1.*", "fc2.*", "downsample.weight", "bn.*"):
      reader.skip(f"{prefix}.{unused}", UNUSED_IN_FORWARD)
    _nest(variables, prefix, scope)
  variables["params"]["fc"] = reader.dense("fc")
  return variables


def _panns_cnn10(reader: StateDictReader) -> dict:
  variables = _new_scope()
  _put_batch_norm(variables, "bn0", reader, "bn0")
  for block in BLOCKS:
    _nest(variables, f"conv_block{block}", _conv_block(reader, f"conv_block{block}"))
  variables["params"]["fc1"] = reader.dense("fc1")
  variables["params"]["fc_audioset"] = reader.dense("fc_audioset")
  for key, shape in PANNS_FRONTEND_SHAPES.items():
    if reader.has(key) and tuple(np.shape(reader.tensors[key])) != shape:
      raise ConversionError(
          f"{reader.source}: {key} has shape {tuple(np.shape(reader.tensors[key]))}, expected "
          f"{shape}: the checkpoint's frontend differs from torchlibrosa with n_fft 1024 and "
          "64 mel bins, which jaxnoise's panns_cnn10 frontend computes")
    reader.skip(key, "frozen torchlibrosa frontend tensor, recomputed by "
                     "jaxnoise.audio.frontends.torchlibrosa_logmel")
  return variables
