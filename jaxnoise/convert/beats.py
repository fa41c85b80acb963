"""Key map for BEATs' released checkpoints (``BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt``).

Layout read: ``{'cfg': <BEATsConfig fields>, 'model': <state dict>}`` as upstream's README loads it;
anything else in the file (the fine-tuned files' 'label_dict') is ignored. The architecture comes
from 'cfg', never from defaults: a field jaxnoise cannot reproduce (``layer_norm_first``, an
activation other than GELU, a checkpoint without the fine-tuned predictor) is refused by name.

Upstream keys and how they map:
  ``encoder.pos_conv.0.weight_g`` (1, 1, K) and ``.weight_v`` (C, C/groups, K): legacy weight norm
    over dim 2; folded into one kernel as upstream computes it, ``g[k] v[o, i, k] / ||v[:, :, k]||``
    (a file re-saved with ``parametrizations.weight_norm`` carries ``...original0/1``: read too);
  ``encoder.layers.L.self_attn.relative_attention_bias.weight``: one tensor that upstream attaches
    to every layer; layer 0's copy is converted and the others, checked equal, are skipped;
  ``self_attn.grep_a`` (1, H, 1, 1) becomes a vector of H gains.
"""
import numpy as np

from jaxnoise.convert.keymap import StateDictReader
from jaxnoise.convert.torch_checkpoint import load_torch_file, to_numpy_state_dict
from jaxnoise.errors import ConversionError
from jaxnoise.models import beats

HEAD_PATHS = {"beats": ("params/predictor/*",)}
POS_CONV = "encoder.pos_conv.0."
# Weight-norm names: legacy torch.nn.utils.weight_norm, then torch.nn.utils.parametrizations.
WEIGHT_NORM_KEYS = (("weight_g", "weight_v"),
                    ("parametrizations.weight.original0", "parametrizations.weight.original1"))
# BEATsConfig fields the Flax model takes under the same name.
SHARED_FIELDS = ("input_patch_size", "embed_dim", "conv_bias", "encoder_layers",
                 "encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_attention_heads",
                 "deep_norm", "conv_pos", "conv_pos_groups", "relative_position_embedding",
                 "num_buckets", "max_distance", "gru_rel_pos", "dropout", "attention_dropout",
                 "activation_dropout", "dropout_input", "encoder_layerdrop", "predictor_dropout",
                 "layer_wise_gradient_decay_ratio")
# Fields that change the forward pass in a way this port does not implement: field -> required.
REQUIRED_VALUES = {"layer_norm_first": False, "activation_fn": "gelu", "finetuned_model": True}


def read_checkpoint(path) -> tuple[dict, dict]:
  """``(state dict as numpy arrays, cfg dict)`` of a BEATs checkpoint file."""
  raw = load_torch_file(path)
  if not isinstance(raw, dict) or not isinstance(raw.get("cfg"), dict) or not isinstance(
      raw.get("model"), dict):
    found = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
    raise ConversionError(f"{path}: not a BEATs checkpoint: expected a dict with 'cfg' (the "
                          f"BEATsConfig fields) and 'model' (the state dict), found {found}")
  return to_numpy_state_dict(raw["model"], str(path)), dict(raw["cfg"])


def infer_config(arch: str, tensors: dict, upstream_config: dict | None = None) -> dict:
  """The jaxnoise config of a checkpoint's 'cfg'.

  Raises:
    ConversionError: naming the fields that are missing or describe a variant not implemented.
  """
  if arch != "beats":
    raise ConversionError(f"the BEATs converter handles 'beats', not {arch!r}")
  del tensors  # every field comes from cfg; the shapes are checked against it afterwards
  if upstream_config is None:
    raise ConversionError("a BEATs state dict alone does not say its architecture; convert the "
                          "checkpoint file, whose 'cfg' holds it")
  wanted = SHARED_FIELDS + ("predictor_class",) + tuple(REQUIRED_VALUES)
  missing = [field for field in wanted if field not in upstream_config]
  if missing:
    raise ConversionError(f"its 'cfg' lacks the BEATsConfig field(s) {missing}")
  unsupported = [f"{field}={upstream_config[field]!r} (jaxnoise implements {value!r})"
                 for field, value in REQUIRED_VALUES.items() if upstream_config[field] != value]
  if unsupported:
    raise ConversionError("its 'cfg' describes a BEATs variant this port does not implement: "
                          + ", ".join(unsupported))
  config = {field: upstream_config[field] for field in SHARED_FIELDS}
  config["num_classes"] = upstream_config["predictor_class"]
  return config


def fold_weight_norm(gain: np.ndarray, direction: np.ndarray) -> np.ndarray:
  """Weight norm over dim 2: gain ``(1, 1, K)`` and direction ``(out, in, K)`` -> the weight
  ``(out, in, K)``, normalising each kernel tap over both channel axes."""
  gain = np.asarray(gain, np.float64)
  direction = np.asarray(direction, np.float64)
  norm = np.sqrt(np.sum(np.square(direction), axis=(0, 1), keepdims=True))
  return (gain * direction / norm).astype(np.float32)


def _positional_kernel(reader: StateDictReader) -> np.ndarray | None:
  """The folded pos-conv kernel as Flax ``(K, in, out)``, from whichever weight-norm keys exist."""
  for gain_key, direction_key in WEIGHT_NORM_KEYS:
    if reader.has(POS_CONV + gain_key):
      gain, direction = reader.take(POS_CONV + gain_key), reader.take(POS_CONV + direction_key)
      if gain is None or direction is None:
        return None
      if gain.ndim != 3 or gain.shape[:2] != (1, 1) or direction.ndim != 3 or (
          gain.shape[2] != direction.shape[2]):
        raise ConversionError(
            f"{reader.source}: {POS_CONV}{gain_key} {gain.shape} and {direction_key} "
            f"{direction.shape} are not weight norm over the kernel axis (expected (1, 1, K) and "
            "(C, C/groups, K))")
      return np.transpose(fold_weight_norm(gain, direction), (2, 1, 0))
  return reader.conv1d(POS_CONV + "weight")  # an unwrapped conv; recorded missing if absent


def _shared_relative_bias(reader: StateDictReader, num_layers: int) -> np.ndarray | None:
  key = "encoder.layers.{}.self_attn.relative_attention_bias.weight"
  table = reader.take(key.format(0))
  differing = []
  for layer in range(1, num_layers):
    other = key.format(layer)
    if reader.has(other):
      if table is not None and not np.array_equal(reader.tensors[other], table):
        differing.append(other)
      reader.skip(other, "the same tensor as layer 0's (upstream shares one table)")
  if differing:
    raise ConversionError(f"{reader.source}: {differing} differ from layer 0's relative position "
                          "table, which upstream shares between all layers")
  return table


def _layer(reader: StateDictReader, prefix: str, config: dict) -> dict:
  attention = {name: reader.dense(prefix + "self_attn." + name)
               for name in ("q_proj", "k_proj", "v_proj", "out_proj")}
  if config["gru_rel_pos"] and config["relative_position_embedding"]:
    attention["grep_linear"] = reader.dense(prefix + "self_attn.grep_linear")
    grep_a = reader.take(prefix + "self_attn.grep_a")
    attention["grep_a"] = None if grep_a is None else grep_a.reshape(-1)
  return {"self_attn": attention,
          "self_attn_layer_norm": reader.layer_norm(prefix + "self_attn_layer_norm"),
          "fc1": reader.dense(prefix + "fc1"), "fc2": reader.dense(prefix + "fc2"),
          "final_layer_norm": reader.layer_norm(prefix + "final_layer_norm")}


def to_flax(arch: str, reader: StateDictReader, config: dict) -> dict:
  """Upstream tensors -> ``{'params': ...}`` of ``jaxnoise.models.beats.BEATs``."""
  if arch != "beats":
    raise ConversionError(f"the BEATs converter handles 'beats', not {arch!r}")
  patch = {"kernel": reader.conv("patch_embedding.weight")}
  if config["conv_bias"]:
    patch["bias"] = reader.take("patch_embedding.bias")
  params = {"patch_embedding": patch, "layer_norm": reader.layer_norm("layer_norm")}
  if config["embed_dim"] != config["encoder_embed_dim"]:
    params["post_extract_proj"] = reader.dense("post_extract_proj")
  num_layers = config["encoder_layers"]
  encoder = {"pos_conv": {"kernel": _positional_kernel(reader),
                          "bias": reader.take(POS_CONV + "bias")},
             "layer_norm": reader.layer_norm("encoder.layer_norm")}
  if config["relative_position_embedding"]:
    encoder["relative_attention_bias"] = {
        "embedding": _shared_relative_bias(reader, num_layers)}
  for layer in range(num_layers):
    encoder[f"layers_{layer}"] = _layer(reader, f"encoder.layers.{layer}.", config)
  params["encoder"] = encoder
  params["predictor"] = reader.dense("predictor")
  return {"params": params}

