"""The HTS-AT Lightning-checkpoint converter: key coverage, recomputed constants, errors, round trip.

Golden tensors come from ../shared/golden/htsat (read once per module); the numerical match of the
converted model is in tests/test_models_htsat.py.
"""
import json

import jax
import numpy as np
import pytest

from conftest import assert_same_variables, edited_tensors
from jaxnoise import convert
from jaxnoise.convert import htsat as htsat_converter
from jaxnoise.convert.keymap import StateDictReader
from jaxnoise.errors import ConversionError
from jaxnoise.models import store

torch = pytest.importorskip("torch", reason="reading Lightning checkpoints needs torch")

FROZEN_FRONTEND_KEYS = ("spectrogram_extractor.stft.conv_real.weight",
                        "spectrogram_extractor.stft.conv_imag.weight", "logmel_extractor.melW")


@pytest.fixture(scope="module")
def checkpoint_path(golden_dir):
  return golden_dir / "htsat" / "htsat_tiny_esc19.ckpt"


@pytest.fixture(scope="module")
def tensors(checkpoint_path):
  return htsat_converter.read_tensors(checkpoint_path)


@pytest.fixture(scope="module")
def converted(tensors):
  return convert.convert_tensors("htsat", tensors, source="golden")


def test_infers_the_golden_architecture(tensors, converted):
  assert all(not key.startswith("sed_model.") for key in tensors) and len(tensors) == 200
  config = htsat_converter.infer_config("htsat", tensors)
  assert config == {"embed_dim": 32, "patch_size": 4, "depths": [2, 2, 6, 2],
                    "num_heads": [4, 8, 16, 32], "window_size": 8, "mlp_ratio": 4.0,
                    "qkv_bias": True, "patch_norm": True, "mel_bins": 64, "enable_tscam": True,
                    "num_classes": 19}
  spec, variables = converted
  assert spec.output_activation == "softmax" and spec.num_classes == 19
  # 3,140,583 upstream parameters without the frozen frontend, less the unused head (19x19 + 19).
  assert sum(leaf.size for leaf in jax.tree.leaves(variables["params"])) == 3_140_583 - 380


def test_skips_exactly_the_recomputed_buffers_and_the_unused_head(tensors):
  reader = StateDictReader(tensors, "golden")
  htsat_converter.to_flax("htsat", reader, htsat_converter.infer_config("htsat", tensors))
  expected = {key for key in tensors if key.endswith(("relative_position_index", "attn_mask"))}
  assert len(expected) == 12 + 5  # every block has an index; shifted blocks of stages 0-2 a mask
  expected |= set(FROZEN_FRONTEND_KEYS) | {"bn0.num_batches_tracked", "head.weight", "head.bias"}
  assert set(reader.skipped) == expected
  assert reader.unused() == [] and reader.missing == []
  assert len(reader.used) == 200 - len(expected)


def test_stored_constants_equal_the_ones_jaxnoise_computes(tensors):
  ours = htsat_converter.recomputed_buffers(htsat_converter.infer_config("htsat", tensors))
  assert set(ours) == {key for key in tensors if key.endswith(
      ("relative_position_index", "attn_mask"))} | set(FROZEN_FRONTEND_KEYS)
  for key, value in ours.items():
    tolerance = 1e-6 if "stft" in key else 0.0  # DFT kernels: float32 round-off of cos/sin
    np.testing.assert_allclose(tensors[key], value, rtol=0, atol=tolerance, err_msg=key)


def test_lightning_layout_with_int_buffers_and_extra_keys_converts_the_same(
    tmp_path, tensors, converted):
  state = {}
  for key, value in tensors.items():
    tensor = torch.from_numpy(np.array(value))
    if key.endswith(("relative_position_index", "num_batches_tracked")):
      tensor = tensor.long()  # a live model's dtype, as ModelCheckpoint would store it
    state["sed_model." + key] = tensor
  path = tmp_path / "lightning.ckpt"
  torch.save({"epoch": 3, "global_step": 1200, "pytorch-lightning_version": "1.5.9",
              "state_dict": state, "lr_schedulers": []}, path)
  spec, variables = convert.convert_checkpoint("htsat", path)
  assert spec.config == converted[0].config
  assert_same_variables(variables, converted[1])


def zero_audioset_tensors(golden_dir):
  """Zero tensors of every key and shape of the published AudioSet model; the recomputed constants
  get their real values, which the converter checks."""
  manifest = json.loads((golden_dir / "htsat" / "htsat_audioset_full.keys.json").read_text())
  tensors = {entry["key"]: np.zeros(entry["shape"], np.float32)
             for entry in manifest["state_dict_keys"]}
  constants = htsat_converter.recomputed_buffers(htsat_converter.infer_config("htsat", tensors))
  assert set(constants) <= set(tensors)
  tensors.update(constants)
  return manifest, tensors


def test_accepts_the_full_audioset_manifest_and_counts_upstreams_parameters(golden_dir):
  manifest, tensors = zero_audioset_tensors(golden_dir)
  assert len(tensors) == manifest["state_dict_entries"] == 200
  spec, variables = convert.convert_tensors("htsat", tensors, source="manifest")
  config = spec.config
  assert (config["embed_dim"], config["depths"], config["num_heads"], config["num_classes"]) == (
      96, [2, 2, 6, 2], [4, 8, 16, 32], 527)
  assert spec.output_activation == "sigmoid" and spec.labels[0] == "Speech"
  params = sum(leaf.size for leaf in jax.tree.leaves(variables["params"]))
  head = 527 * 527 + 527  # upstream's unused head.*, skipped
  frontend = sum(np.prod(tensors[key].shape) for key in FROZEN_FRONTEND_KEYS)
  assert params + head == manifest["parameter_count_excluding_frozen_frontend"] == 30_241_687
  assert params + head + frontend == manifest["parameter_count"] == 31_325_143


@pytest.mark.parametrize("change,message", [
    ({"add": {"layers.0.blocks.0.attn.extra": np.zeros(3, np.float32)}},
     "unknown upstream keys.*layers.0.blocks.0.attn.extra"),
    ({"drop": ("layers.2.blocks.4.mlp.fc2.bias",)}, "missing upstream keys.*layers.2.blocks.4.mlp.fc2.bias"),
    ({"reshape": {"layers.1.blocks.1.attn.proj.weight": (64, 63)}},
     "mis-shaped.*layers_1/blocks_1/attn/proj/kernel"),
    ({"reshape": {"layers.0.blocks.1.attn_mask": (64, 64, 64)}},
     "layers.0.blocks.1.attn_mask: values differ"),
    ({"reshape": {"logmel_extractor.melW": (513, 128)}}, "logmel_extractor.melW: shape"),
    ({"drop": ("patch_embed.proj.weight",)}, "no 'patch_embed.proj.weight'.*not an HTS-AT"),
])
def test_conversion_errors_name_the_key(tensors, change, message):
  with pytest.raises(ConversionError, match=f"(?s){message}"):
    convert.convert_tensors("htsat", edited_tensors(tensors, **change), source="edited.ckpt")


def test_head_mismatch_needs_the_flag_and_then_replaces_only_the_head(tensors, converted):
  with pytest.raises(ConversionError, match="(?s)tscam_conv.*--allow-head-mismatch"):
    convert.convert_tensors("htsat", tensors, source="golden", config_overrides={"num_classes": 10})
  spec, variables = convert.convert_tensors("htsat", tensors, source="golden",
                                            config_overrides={"num_classes": 10},
                                            allow_head_mismatch=True)
  assert variables["params"]["tscam_conv"]["kernel"].shape == (2, 3, 256, 10)
  assert spec.num_classes == 10
  kept = {k: v for k, v in variables["params"].items() if k != "tscam_conv"}
  original = {k: v for k, v in converted[1]["params"].items() if k != "tscam_conv"}
  assert_same_variables(kept, original)


def test_convert_cli_writes_a_model_that_loads_back_identical(tmp_path, checkpoint_path, converted):
  from jaxnoise.convert.__main__ import main  # pylint: disable=import-outside-toplevel
  out = tmp_path / "htsat_tiny"
  assert main(["--arch", "htsat", "--src", str(checkpoint_path), "--out", str(out)]) == 0
  spec, variables = store.load_model(out)
  assert spec.config == converted[0].config and spec.labels == converted[0].labels
  assert_same_variables(variables, converted[1])
  metadata = store.read_model_config(out)
  assert metadata["source"]["sha256"] == store.file_sha256(checkpoint_path)


def test_convert_cli_reports_a_broken_file_without_traceback(tmp_path, capsys):
  from jaxnoise import cli  # pylint: disable=import-outside-toplevel
  from jaxnoise.convert.__main__ import main  # pylint: disable=import-outside-toplevel
  broken = tmp_path / "broken.ckpt"
  broken.write_bytes(b"not a checkpoint")
  assert cli.run_main(main, ["--arch", "htsat", "--src", str(broken),
                             "--out", str(tmp_path / "out")]) == 2
  assert "broken.ckpt" in capsys.readouterr().err
