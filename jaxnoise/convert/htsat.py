"""Key map for HTS-AT's PyTorch-Lightning checkpoints (``HTSAT_AudioSet_Saved_*.ckpt``).

Layout read: a dict with the weights under 'state_dict' (upstream's ``weight_average()`` files hold
only that key; a Lightning ``ModelCheckpoint`` adds epoch, optimizer states, ...), every key prefixed
with ``sed_model.`` (Lightning's ``SEDWrapper`` attribute), which is stripped; a bare HTS-AT state dict
is read as well. Integer buffers may be stored as float32 (``weight_average()`` casts everything).

Upstream keys that are deliberately not converted, each with its reason:
  ``layers.i.blocks.j.attn.relative_position_index``: a constant table of the window geometry,
    recomputed by ``jaxnoise.models.swin.relative_position_index``;
  ``layers.i.blocks.j.attn_mask`` (shifted blocks only): a constant mask of the grid and shift,
    recomputed by ``jaxnoise.models.swin.shifted_window_mask``;
  ``spectrogram_extractor.stft.conv_{real,imag}.weight`` (windowed DFT kernels) and
    ``logmel_extractor.melW`` (mel filterbank): frozen torchlibrosa tensors, recomputed by
    ``jaxnoise.audio.frontends.torchlibrosa_logmel``;
  ``bn0.num_batches_tracked``: a step counter Flax does not keep;
  ``head.*`` when the token-semantic head is on: a Linear(classes, classes) that upstream builds but
    never calls in its forward pass.
Each recomputed tensor that the checkpoint holds is compared with jaxnoise's own (shape and value),
so a checkpoint built with another window, grid or frontend is refused instead of silently
computing something else.
"""
import re

import numpy as np

from jaxnoise.audio import filterbanks
from jaxnoise.convert.keymap import StateDictReader
from jaxnoise.convert.torch_checkpoint import read_state_dict
from jaxnoise.errors import ConversionError
from jaxnoise.models import htsat, registry, swin

PREFIX = "sed_model."
HEAD_PATHS = {"htsat": ("params/tscam_conv/*", "params/head/*")}
N_FFT = 1024
# Recomputed tensors are stored in float32; differences beyond these mean another configuration.
# (key fragment, max abs difference): index and mask are exact, the DSP tensors float32 round-off.
VALUE_TOLERANCE = (("relative_position_index", 0.0), ("attn_mask", 0.0), ("stft.conv_", 1e-5),
                   ("melW", 1e-6))

_BLOCK_KEY = re.compile(r"layers\.(\d+)\.blocks\.(\d+)\.")


def read_tensors(path) -> dict:
  """The HTS-AT state dict of a Lightning checkpoint (or a bare state dict), without ``sed_model.``."""
  return read_state_dict(path, wrapper_keys=("state_dict",), strip_prefixes=(PREFIX,))


def _shape(tensors: dict, key: str) -> tuple:
  if key not in tensors:
    raise ConversionError(f"no {key!r} in the checkpoint: not an HTS-AT state dict? "
                          f"(first keys: {sorted(tensors)[:5]})")
  return tuple(np.shape(tensors[key]))


def infer_config(arch: str, tensors: dict) -> dict:
  """Architecture config implied by the tensors' shapes.

  Reads embed_dim and patch_size (patch conv), depths (block keys per stage), num_heads (bias
  tables), window_size (bias table rows = (2w - 1)^2), mlp_ratio, mel_bins (bn0), whether the
  token-semantic head is on, and the class count. spec_size, patch_stride and loss_type keep their
  defaults (loss_type follows the class count) unless overridden.
  """
  if arch != "htsat":
    raise ConversionError(f"the HTS-AT converter handles 'htsat', not {arch!r}")
  embed_dim, _, patch_size, _ = _shape(tensors, "patch_embed.proj.weight")
  blocks = {}
  for key in tensors:
    match = _BLOCK_KEY.match(key)
    if match:
      blocks.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
  if sorted(blocks) != list(range(len(blocks))) or not blocks:
    raise ConversionError(f"HTS-AT stages must be numbered layers.0, layers.1, ...; found stages "
                          f"{sorted(blocks)}")
  depths = [len(blocks[stage]) for stage in range(len(blocks))]
  num_heads = [_shape(tensors, f"layers.{stage}.blocks.0.attn.relative_position_bias_table")[1]
               for stage in range(len(blocks))]
  table_rows = _shape(tensors, "layers.0.blocks.0.attn.relative_position_bias_table")[0]
  window_size = (int(round(table_rows ** 0.5)) + 1) // 2
  if (2 * window_size - 1) ** 2 != table_rows:
    raise ConversionError(f"relative_position_bias_table has {table_rows} rows, not (2w - 1)^2 "
                          "for any window size w")
  hidden = _shape(tensors, "layers.0.blocks.0.mlp.fc1.weight")[0]
  enable_tscam = "tscam_conv.weight" in tensors
  head_key = "tscam_conv.weight" if enable_tscam else "head.weight"
  return {
      "embed_dim": int(embed_dim),
      "patch_size": int(patch_size),
      "depths": depths,
      "num_heads": [int(heads) for heads in num_heads],
      "window_size": window_size,
      "mlp_ratio": hidden / embed_dim,
      "qkv_bias": "layers.0.blocks.0.attn.qkv.bias" in tensors,
      "patch_norm": "patch_embed.norm.weight" in tensors,
      "mel_bins": int(_shape(tensors, "bn0.weight")[0]),
      "enable_tscam": enable_tscam,
      "num_classes": int(_shape(tensors, head_key)[0]),
  }


def recomputed_buffers(config: dict) -> dict:
  """The constant tensors upstream stores and jaxnoise recomputes, by upstream key, for ``config``."""
  network = htsat.build_network(registry.default_config("htsat") | dict(config))
  buffers = {}
  rows, cols = network.patch_grid
  for stage, depth in enumerate(network.depths):
    for block in range(depth):
      shift = 0 if block % 2 == 0 else network.window_size // 2
      window, shift = swin.effective_window((rows, cols), network.window_size, shift)
      prefix = f"layers.{stage}.blocks.{block}."
      buffers[prefix + "attn.relative_position_index"] = swin.relative_position_index(window)
      if shift:
        buffers[prefix + "attn_mask"] = swin.shifted_window_mask(rows, cols, window, shift)
    rows, cols = rows // 2, cols // 2
  window = filterbanks.hann(N_FFT, symmetric=False)
  angle = 2 * np.pi * np.outer(np.arange(N_FFT // 2 + 1), np.arange(N_FFT)) / N_FFT
  buffers["spectrogram_extractor.stft.conv_real.weight"] = (
      np.cos(angle) * window)[:, None, :].astype(np.float32)
  buffers["spectrogram_extractor.stft.conv_imag.weight"] = (
      -np.sin(angle) * window)[:, None, :].astype(np.float32)
  buffers["logmel_extractor.melW"] = filterbanks.slaney_mel(
      htsat.SAMPLE_RATE, N_FFT, network.mel_bins, *htsat.BAND)
  return buffers


def _check_and_skip_recomputed(reader: StateDictReader, config: dict) -> None:
  problems = []
  for key, ours in recomputed_buffers(config).items():
    if not reader.has(key):
      continue  # nothing to compare; jaxnoise computes it anyway
    stored = np.asarray(reader.tensors[key], np.float64)
    tolerance = next(limit for fragment, limit in VALUE_TOLERANCE if fragment in key)
    if stored.shape != ours.shape:
      problems.append(f"{key}: shape {stored.shape}, but this configuration computes {ours.shape}")
    elif np.max(np.abs(stored - ours)) > tolerance:
      problems.append(f"{key}: values differ from jaxnoise's by up to "
                      f"{np.max(np.abs(stored - ours)):.3g}")
    reader.skip(key, "constant recomputed by jaxnoise from the configuration")
  if problems:
    raise ConversionError(
        f"{reader.source}: stored constants do not match the architecture jaxnoise builds for it "
        "(another window size, grid, n_fft, mel bins or band?):\n  - " + "\n  - ".join(problems))


def _block(reader: StateDictReader, prefix: str) -> dict:
  return {
      "norm1": reader.layer_norm(prefix + "norm1"),
      "attn": {
          "qkv": reader.dense(prefix + "attn.qkv", bias=reader.has(prefix + "attn.qkv.bias")),
          "proj": reader.dense(prefix + "attn.proj"),
          "relative_position_bias_table": reader.take(
              prefix + "attn.relative_position_bias_table"),
      },
      "norm2": reader.layer_norm(prefix + "norm2"),
      "mlp": {"fc1": reader.dense(prefix + "mlp.fc1"), "fc2": reader.dense(prefix + "mlp.fc2")},
  }


def to_flax(arch: str, reader: StateDictReader, config: dict) -> dict:
  """Upstream tensors -> ``{'params': ..., 'batch_stats': ...}`` of ``jaxnoise.models.htsat.HTSAT``."""
  if arch != "htsat":
    raise ConversionError(f"the HTS-AT converter handles 'htsat', not {arch!r}")
  _check_and_skip_recomputed(reader, config)
  bn0_params, bn0_stats = reader.batch_norm("bn0")
  params = {"bn0": bn0_params,
            "patch_embed": {"proj": {"kernel": reader.conv("patch_embed.proj.weight"),
                                     "bias": reader.take("patch_embed.proj.bias")}}}
  if config["patch_norm"]:
    params["patch_embed"]["norm"] = reader.layer_norm("patch_embed.norm")
  depths = config["depths"]
  for stage, depth in enumerate(depths):
    layer = {f"blocks_{block}": _block(reader, f"layers.{stage}.blocks.{block}.")
             for block in range(depth)}
    if stage < len(depths) - 1:
      layer["downsample"] = {"norm": reader.layer_norm(f"layers.{stage}.downsample.norm"),
                             "reduction": reader.dense(f"layers.{stage}.downsample.reduction",
                                                       bias=False)}
    params[f"layers_{stage}"] = layer
  params["norm"] = reader.layer_norm("norm")
  if config["enable_tscam"]:
    params["tscam_conv"] = {"kernel": reader.conv("tscam_conv.weight"),
                            "bias": reader.take("tscam_conv.bias")}
    reader.skip("head.weight", "Linear(classes, classes) never called in upstream's forward pass "
                               "when the token-semantic head is on")
    reader.skip("head.bias", "unused in upstream's forward pass (see head.weight)")
  else:
    params["head"] = reader.dense("head")
  return {"params": params, "batch_stats": {"bn0": bn0_stats}}
