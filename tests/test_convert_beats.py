"""The BEATs checkpoint converter: config from 'cfg', key coverage of the full release, errors, CLI.

Golden files come from ../shared/golden/beats; the numerical match of the converted model is in
tests/test_models_beats.py.
"""
import json

import jax
import numpy as np
import pytest

from conftest import assert_same_variables, edited_tensors
from jaxnoise import convert
from jaxnoise.convert import beats as beats_converter
from jaxnoise.convert.keymap import StateDictReader
from jaxnoise.errors import ConversionError
from jaxnoise.models import store

torch = pytest.importorskip("torch", reason="reading BEATs checkpoints needs torch")

SHARED_TABLE = "encoder.layers.{}.self_attn.relative_attention_bias.weight"


@pytest.fixture(scope="module")
def checkpoint_path(golden_dir):
  return golden_dir / "beats" / "beats_tiny_esc19.pt"


@pytest.fixture(scope="module")
def checkpoint(checkpoint_path):
  return beats_converter.read_checkpoint(checkpoint_path)


@pytest.fixture(scope="module")
def converted(checkpoint):
  tensors, cfg = checkpoint
  return convert.convert_tensors("beats", tensors, source="golden", upstream_config=cfg)


def parameter_count(variables) -> int:
  return sum(np.size(leaf) for leaf in jax.tree.leaves(variables["params"]))


def test_config_comes_from_the_checkpoints_cfg(checkpoint, converted, golden_dir):
  tensors, cfg = checkpoint
  manifest = json.loads((golden_dir / "beats" / "beats_tiny_esc19.manifest.json").read_text())
  assert cfg == manifest["cfg_in_checkpoint"] and len(tensors) == 72
  spec, variables = converted
  config = spec.config
  assert (config["embed_dim"], config["encoder_embed_dim"], config["encoder_layers"],
          config["encoder_attention_heads"], config["max_distance"], config["num_classes"]) == (
              64, 96, 3, 4, 800, 19)
  assert spec.sample_rate == 16000 and spec.num_classes == 19
  # 324,983 upstream parameters (the shared table once), less the 128 folded weight-norm gains.
  assert parameter_count(variables) == manifest["parameter_count"] - 128 == 324_983 - 128


def test_uses_every_key_and_skips_only_the_shared_table_copies(checkpoint):
  tensors, cfg = checkpoint
  reader = StateDictReader(tensors, "golden")
  beats_converter.to_flax("beats", reader, beats_converter.infer_config("beats", tensors, cfg))
  assert set(reader.skipped) == {SHARED_TABLE.format(1), SHARED_TABLE.format(2)}
  assert reader.unused() == [] and reader.missing == []
  assert len(reader.used) == 72 - 2


@pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning")
def test_weight_norm_folds_as_torch_computes_it():
  conv = torch.nn.utils.weight_norm(torch.nn.Conv1d(8, 8, 6, groups=2), name="weight", dim=2)
  with torch.no_grad():
    conv.weight_g.uniform_(0.5, 1.5)
    conv(torch.zeros(1, 8, 6))  # the forward pre-hook recomputes .weight from g and v
  folded = beats_converter.fold_weight_norm(conv.weight_g.detach().numpy(),
                                            conv.weight_v.detach().numpy())
  np.testing.assert_allclose(folded, conv.weight.detach().numpy(), rtol=1e-6, atol=1e-7)


def full_release_tensors(golden_dir):
  """Constant tensors of every key and shape of the released AS2M fine-tuned model (read-only
  broadcasts: no 360 MB of memory), and its cfg."""
  manifest = json.loads((golden_dir / "beats" / "beats_iter3_as2m_full.keys.json").read_text())
  tensors = {entry["key"]: np.broadcast_to(np.float32(0.5), entry["shape"])
             for entry in manifest["state_dict_keys"]}
  return manifest, tensors


def test_accepts_the_full_release_key_list_with_upstreams_parameter_count(golden_dir):
  manifest, tensors = full_release_tensors(golden_dir)
  assert len(tensors) == manifest["state_dict_entries"] == 252
  reader = StateDictReader(tensors, "manifest")
  config = beats_converter.infer_config("beats", tensors, manifest["cfg"])
  beats_converter.to_flax("beats", reader, config)
  assert reader.unused() == [] and reader.missing == []
  assert set(reader.skipped) == {SHARED_TABLE.format(layer) for layer in range(1, 12)}
  spec, variables = convert.convert_tensors("beats", tensors, source="manifest",
                                            upstream_config=manifest["cfg"])
  assert spec.num_classes == 527 and spec.output_activation == "sigmoid"
  assert spec.labels[0] == "Speech"
  gains = 128  # encoder.pos_conv.0.weight_g, folded into the kernel
  assert parameter_count(variables) + gains == manifest["parameter_count"] == 90_717_055
  predictor = 527 * 768 + 527
  assert (parameter_count(variables) + gains - predictor
          == manifest["parameter_count_without_predictor"])


def test_parametrizations_weight_norm_layout_converts_the_same(checkpoint, converted):
  tensors, cfg = checkpoint
  renamed = dict(tensors)
  renamed["encoder.pos_conv.0.parametrizations.weight.original0"] = renamed.pop(
      "encoder.pos_conv.0.weight_g")
  renamed["encoder.pos_conv.0.parametrizations.weight.original1"] = renamed.pop(
      "encoder.pos_conv.0.weight_v")
  _, variables = convert.convert_tensors("beats", renamed, source="renamed", upstream_config=cfg)
  assert_same_variables(variables, converted[1])


@pytest.mark.parametrize("change,message", [
    ({"add": {"encoder.layers.0.self_attn.extra": np.zeros(3, np.float32)}},
     "unknown upstream keys.*encoder.layers.0.self_attn.extra"),
    ({"drop": ("encoder.layers.2.fc2.bias",)}, "missing upstream keys.*encoder.layers.2.fc2.bias"),
    ({"reshape": {"encoder.layers.1.fc1.weight": (192, 95)}},
     "mis-shaped.*encoder/layers_1/fc1/kernel"),
    ({"reshape": {"encoder.pos_conv.0.weight_g": (1, 128)}}, "weight_g.*not weight norm"),
    ({"reshape": {SHARED_TABLE.format(2): (320, 4)}}, "layers.2.*differ from layer 0"),
])
def test_conversion_errors_name_the_key(checkpoint, change, message):
  tensors, cfg = checkpoint
  with pytest.raises(ConversionError, match=f"(?s){message}"):
    convert.convert_tensors("beats", edited_tensors(tensors, **change), source="edited.pt",
                            upstream_config=cfg)


@pytest.mark.parametrize("cfg_change,message", [
    ({"layer_norm_first": True}, "layer_norm_first=True"),
    ({"activation_fn": "relu"}, "activation_fn='relu'"),
    ({"finetuned_model": False}, "finetuned_model=False"),
    ({"max_distance": None}, "lacks the BEATsConfig field.*max_distance"),
])
def test_unsupported_or_incomplete_cfg_is_refused_by_name(checkpoint, cfg_change, message):
  tensors, cfg = checkpoint
  cfg = dict(cfg, **cfg_change)
  cfg = {key: value for key, value in cfg.items() if value is not None}
  with pytest.raises(ConversionError, match=f"(?s)edited.pt: .*{message}"):
    convert.convert_tensors("beats", tensors, source="edited.pt", upstream_config=cfg)


def test_foreign_checkpoints_are_refused(tmp_path, golden_dir, checkpoint):
  tensors, _ = checkpoint
  with pytest.raises(ConversionError, match="tensors.pt: .*whose 'cfg' holds it"):
    convert.convert_tensors("beats", tensors, source="tensors.pt")
  bare = tmp_path / "bare_state_dict.pt"
  torch.save({key: torch.from_numpy(np.array(value)) for key, value in tensors.items()}, bare)
  for path in (bare, golden_dir / "htsat" / "htsat_tiny_esc19.ckpt"):
    with pytest.raises(ConversionError, match=f"{path.name}: not a BEATs checkpoint.*'cfg'"):
      convert.convert_checkpoint("beats", path)


def test_head_mismatch_needs_the_flag_and_then_replaces_only_the_predictor(checkpoint, converted):
  tensors, cfg = checkpoint
  with pytest.raises(ConversionError, match="(?s)predictor.*--allow-head-mismatch"):
    convert.convert_tensors("beats", tensors, source="golden", upstream_config=cfg,
                            config_overrides={"num_classes": 10})
  spec, variables = convert.convert_tensors("beats", tensors, source="golden", upstream_config=cfg,
                                            config_overrides={"num_classes": 10},
                                            allow_head_mismatch=True)
  assert variables["params"]["predictor"]["kernel"].shape == (96, 10)
  assert spec.num_classes == 10 and spec.output_activation == "softmax"
  kept = {k: v for k, v in variables["params"].items() if k != "predictor"}
  original = {k: v for k, v in converted[1]["params"].items() if k != "predictor"}
  assert_same_variables(kept, original)


def test_convert_cli_writes_a_model_that_loads_back_identical(tmp_path, checkpoint_path, converted):
  from jaxnoise.convert.__main__ import main  # pylint: disable=import-outside-toplevel
  out = tmp_path / "beats_tiny"
  assert main(["--arch", "beats", "--src", str(checkpoint_path), "--out", str(out)]) == 0
  spec, variables = store.load_model(out)
  assert spec.config == converted[0].config and spec.labels == converted[0].labels
  assert_same_variables(variables, converted[1])
  assert store.read_model_config(out)["source"]["sha256"] == store.file_sha256(checkpoint_path)
