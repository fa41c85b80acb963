"""Key map of EfficientAT MobileNetV3 ("mn") state dicts onto ``jaxnoise.models.mobilenet``.

Upstream files (``mn04_as_mAP_432.pt``, ``mn40_as_ext_mAP_487.pt``, ESC-50 fine-tunes saved by
``ex_esc50.py``) are plain ``torch.save``d state dicts without a prefix; a ``{'state_dict': ...}``
or ``{'model': ...}`` wrapper is accepted too. Upstream names and their Flax homes:

  features.0.{0,1}                      stem conv + BN         -> features_0/{conv,norm}
  features.i.block.j (i = 1..15)        expand / depthwise / SE / project, j counted over the
                                        sub-layers present     -> features_i/{expand,depthwise,
                                                                  squeeze_excitation,project}
  features.i.block.j.conc_se_layers.0.fc{1,2}    SE layers   -> features_i/squeeze_excitation/fc*
  features.16.{0,1}                     last 1x1 conv + BN     -> features_16/{conv,norm}
  classifier.2, classifier.5            head Linear layers     -> classifier_{hidden,output}

Width and class count are read from the tensors: every released width gives a distinct set of
channel counts, and widths giving the same counts build the same network.
"""
import numpy as np

from jaxnoise.convert import torch_checkpoint
from jaxnoise.errors import ConversionError
from jaxnoise.models import mobilenet

HEAD_PATHS = {"mn": ("params/classifier_*",)}

# Widths of upstream's released checkpoints (mn01 ... mn40), preferred when several widths fit.
RELEASED_WIDTHS = (0.1, 0.2, 0.4, 0.5, 1.0, 2.0, 3.0, 4.0)
# Any other width is searched on this grid (0.01 ... 8.0).
WIDTH_GRID = tuple(step / 100 for step in range(1, 801))

STEM_KEY = "features.0.0.weight"
OUTPUT_BIAS_KEY = "classifier.5.bias"


def read_tensors(path) -> dict:
  """The state dict of an EfficientAT file as ``{key: np.ndarray}``."""
  return torch_checkpoint.read_state_dict(path, wrapper_keys=("state_dict", "model"))


def _observed_channels(tensors: dict) -> dict:
  """Output channels of every conv/linear weight in ``tensors``: ``{key: channels}``."""
  return {key: int(np.shape(value)[0]) for key, value in tensors.items()
          if key.endswith(".weight") and np.ndim(value) in (2, 4)}


def _expected_channels(width: float) -> dict:
  """Output channels of every conv/linear weight upstream builds at ``width`` (head output left
  out: it is the class count)."""
  plan = mobilenet.architecture(width)
  channels = {STEM_KEY: plan.stem_channels}
  for index, block in enumerate(plan.blocks, start=1):
    for prefix, layer in block_layer_prefixes(index, block).items():
      if layer == "squeeze_excitation":
        channels[prefix + ".conc_se_layers.0.fc1.weight"] = block.squeeze_channels
        channels[prefix + ".conc_se_layers.0.fc2.weight"] = block.expanded_channels
      else:
        out = block.out_channels if layer == "project" else block.expanded_channels
        channels[prefix + ".0.weight"] = out
  channels[f"features.{len(plan.blocks) + 1}.0.weight"] = plan.last_conv_channels
  channels["classifier.2.weight"] = plan.hidden_channels
  return channels


def infer_width(tensors: dict) -> float | None:
  """The width whose channel plan equals the checkpoint's, or None if no width on the grid fits."""
  observed = _observed_channels(tensors)
  for width in RELEASED_WIDTHS + WIDTH_GRID:
    expected = _expected_channels(width)
    if all(observed.get(key) == channels for key, channels in expected.items()):
      return width
  return None


def _describe(tensors: dict) -> str:
  observed = _observed_channels(tensors)
  return (f"stem {observed.get(STEM_KEY)} channels, last conv "
          f"{observed.get('features.16.0.weight')}, head hidden "
          f"{observed.get('classifier.2.weight')}")


def infer_config(arch: str, tensors: dict) -> dict:
  """``{'width', 'num_classes', 'head_type'}`` implied by an EfficientAT state dict.

  The width is left out (the default or ``--width`` applies, and ``to_flax`` explains a misfit) when
  no width on the grid reproduces the checkpoint's channel counts.
  """
  del arch
  if STEM_KEY not in tensors:
    sample = sorted(tensors)[:5]
    raise ConversionError(f"not an EfficientAT mn state dict: no {STEM_KEY!r} (first keys: "
                          f"{sample})")
  if OUTPUT_BIAS_KEY not in tensors:
    head_keys = sorted(key for key in tensors if key.startswith("classifier."))
    raise ConversionError(f"only EfficientAT's 'mlp' head is supported (every released mn "
                          f"checkpoint has it): no {OUTPUT_BIAS_KEY!r}, classifier keys are "
                          f"{head_keys}")
  config = {"num_classes": int(np.shape(tensors[OUTPUT_BIAS_KEY])[0]), "head_type": "mlp"}
  width = infer_width(tensors)
  if width is not None:
    config["width"] = width
  return config


def block_layer_prefixes(index: int, block: mobilenet.BlockConfig) -> dict:
  """``{upstream prefix: Flax sub-layer}`` of block ``features.index``; upstream numbers only the
  sub-layers present, so the depthwise conv is ``block.0`` where there is no expanding conv."""
  layers = (["expand"] if block.has_expand else []) + ["depthwise"]
  if block.squeeze_channels:
    layers.append("squeeze_excitation")
  layers.append("project")
  return {f"features.{index}.block.{position}": layer for position, layer in enumerate(layers)}


def _conv_norm(reader, prefix: str):
  """Upstream ``ConvNormActivation`` at ``prefix`` -> (params, batch_stats) of ours."""
  norm_params, norm_stats = reader.batch_norm(prefix + ".1")
  return {"conv": {"kernel": reader.conv(prefix + ".0.weight")}, "norm": norm_params}, {
      "norm": norm_stats}


def _check_width(reader, width: float):
  """A clear error when the checkpoint's channels do not fit ``width`` (instead of a list of
  mis-shaped keys)."""
  observed = _observed_channels(reader.tensors)
  expected = _expected_channels(width)
  wrong = sorted(key for key, channels in expected.items()
                 if key in observed and observed[key] != channels)
  if wrong:
    fitting = infer_width(reader.tensors)
    hint = (f"it fits width {fitting}" if fitting is not None
            else "no width in 0.01 ... 8.0 fits it (not a MobileNetV3 'mn' checkpoint?)")
    raise ConversionError(
        f"{reader.source}: its channels ({_describe(reader.tensors)}) do not fit width {width} "
        f"(e.g. {wrong[0]}: {observed[wrong[0]]} channels, width {width} has "
        f"{expected[wrong[0]]}); {hint}; pass --width to choose")


def to_flax(arch: str, reader, config: dict) -> dict:
  """Reads every upstream tensor through ``reader`` into our variable tree."""
  del arch
  _check_width(reader, config["width"])
  plan = mobilenet.architecture(config["width"])
  params, stats = {}, {}
  params["features_0"], stats["features_0"] = _conv_norm(reader, "features.0")
  for index, block in enumerate(plan.blocks, start=1):
    block_params, block_stats = {}, {}
    for prefix, layer in block_layer_prefixes(index, block).items():
      if layer == "squeeze_excitation":
        block_params[layer] = {"fc1": reader.dense(prefix + ".conc_se_layers.0.fc1"),
                               "fc2": reader.dense(prefix + ".conc_se_layers.0.fc2")}
      else:
        block_params[layer], block_stats[layer] = _conv_norm(reader, prefix)
    params[f"features_{index}"], stats[f"features_{index}"] = block_params, block_stats
  last = len(plan.blocks) + 1
  params[f"features_{last}"], stats[f"features_{last}"] = _conv_norm(reader, f"features.{last}")
  params["classifier_hidden"] = reader.dense("classifier.2")
  params["classifier_output"] = reader.dense("classifier.5")
  return {"params": params, "batch_stats": stats}
