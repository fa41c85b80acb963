"""EfficientAT checkpoints converted and run against upstream PyTorch outputs (../shared/golden/mn).

The real AudioSet ``mn04_as`` and the random 19-class ``mn04`` must reproduce every stored
intermediate, the logits and the scores within the README's float32 tolerances, with the same top-5
AudioSet classes; the ``mn40_as_ext`` key/shape manifest must convert key for key.
"""
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnoise import convert
from jaxnoise.convert import keymap
from jaxnoise.convert import mobilenet as mn_convert
from jaxnoise.errors import ConversionError
from jaxnoise.models import registry, store

pytest.importorskip("torch", reason="reading PyTorch checkpoints needs the 'convert' extra")

CHECKPOINTS = {"mn04_as": "mn04_as_mAP_432.pt", "mn04_random_19cls": "mn04_random_19cls.pt"}
# Golden NCHW activations -> our sown NHWC ([batch, mels, frames, channels]) maps.
INTERMEDIATES = {
    "act_features0_stem": "features_0_output",
    "act_features2_block2": "features_2_output",
    "act_features4_block4_first_se": "features_4_output",
    "act_features_last_conv": "features_16_output",
}
# ../shared/golden/mn/README.md: suggested tolerances for a float32 port.
ACTIVATION_ATOL = 1e-3
LOGITS_ATOL = 2e-4
SCORES_ATOL = 1e-5
# From the waveform, our frontend's float32 error (<= 1e-4 on the log-mel) adds to the network's.
END_TO_END_SCORES_ATOL = 3e-5


def max_abs(a, b) -> float:
  return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def top5(scores) -> np.ndarray:
  """Indices of the 5 largest scores per row, ties broken by index (upstream's stable sort)."""
  return np.argsort(-np.asarray(scores), axis=-1, kind="stable")[:, :5]


@pytest.fixture(scope="module")
def mn_dir(golden_dir):
  return golden_dir / "mn"


@pytest.fixture(scope="module")
def converted(mn_dir):
  """name -> (spec, variables, golden arrays, jitted forward returning intermediates)."""
  models = {}
  for name, filename in CHECKPOINTS.items():
    spec, variables = convert.convert_checkpoint("mn", mn_dir / filename)
    forward = jax.jit(lambda v, x, network=spec.network: network.apply(
        v, x, mutable=["intermediates"]))
    models[name] = (spec, variables, dict(np.load(mn_dir / f"{name}.io.npz")), forward)
  return models


def test_inferred_config(converted):
  audioset, _, _, _ = converted["mn04_as"]
  esc, _, _, _ = converted["mn04_random_19cls"]
  assert (audioset.config["width"], audioset.num_classes, audioset.output_activation) == (
      0.4, 527, "sigmoid")
  assert (esc.config["width"], esc.num_classes, esc.output_activation) == (0.4, 19, "softmax")


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_golden_intermediates_and_outputs_from_mel(converted, name):
  spec, variables, golden, forward = converted[name]
  mel = jnp.asarray(golden["mel_input"].transpose(0, 2, 1))  # [batch, frames, 128]
  outputs, state = forward(variables, mel)
  for golden_name, ours in INTERMEDIATES.items():
    reference = golden[golden_name].transpose(0, 2, 3, 1)
    activation = state["intermediates"][ours][0]
    assert activation.shape == reference.shape, golden_name
    assert max_abs(activation, reference) < ACTIVATION_ATOL, golden_name
  assert max_abs(outputs["embedding"], golden["embedding_pooled"]) < ACTIVATION_ATOL
  assert max_abs(outputs["logits"], golden["logits"]) < LOGITS_ATOL
  scores = spec.scores(outputs["logits"])
  reference_scores = golden.get("clipwise_sigmoid", golden.get("clipwise_softmax"))
  assert max_abs(scores, reference_scores) < SCORES_ATOL
  if "top5_audioset_indices" in golden:
    np.testing.assert_array_equal(top5(scores), golden["top5_audioset_indices"])
  np.testing.assert_array_equal(np.argmax(scores, -1), np.argmax(reference_scores, -1))


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_golden_outputs_from_waveform_through_our_frontend(converted, name):
  spec, variables, golden, forward = converted[name]
  features = spec.features(jnp.asarray(golden["waveform"]))
  outputs, _ = forward(variables, features)
  assert max_abs(outputs["logits"], golden["logits"]) < LOGITS_ATOL
  scores = spec.scores(outputs["logits"])
  if "top5_audioset_indices" in golden:
    assert max_abs(scores, golden["clipwise_sigmoid"]) < END_TO_END_SCORES_ATOL
    np.testing.assert_array_equal(top5(scores), golden["top5_audioset_indices"])
  else:
    assert max_abs(scores, golden["clipwise_softmax"]) < END_TO_END_SCORES_ATOL


def test_feature_group_count_reference_agrees_on_the_real_checkpoint(converted):
  spec, variables, golden, _ = converted["mn04_as"]
  reference = jax.jit(spec.network.clone(conv_algorithm="feature_group_count").apply)
  logits = reference(variables, jnp.asarray(golden["mel_input"].transpose(0, 2, 1)))["logits"]
  assert max_abs(logits, golden["logits"]) < LOGITS_ATOL


def test_full_mn40_as_ext_manifest_converts_key_for_key(mn_dir):
  manifest = json.loads((mn_dir / "mn40_as_ext.keys.json").read_text())
  tensors = {entry["key"]: np.zeros(entry["shape"], np.dtype(entry["dtype"]))
             for entry in manifest["state_dict_keys"]}
  assert len(tensors) == manifest["state_dict_entries"] == 312
  config = mn_convert.infer_config("mn", tensors)
  assert config == {"width": 4.0, "num_classes": 527, "head_type": "mlp"}
  spec = registry.build_spec("mn", config)
  reader = keymap.StateDictReader(tensors, "mn40_as_ext.keys.json")
  expected = jax.eval_shape(spec.init, jax.random.key(0))
  variables = keymap.finish_conversion(reader, mn_convert.to_flax("mn", reader, config), expected,
                                       head_paths=mn_convert.HEAD_PATHS["mn"])
  assert reader.unused() == [] and reader.missing == []
  assert sorted(reader.skipped) == sorted(k for k in tensors if k.endswith("num_batches_tracked"))
  assert len(reader.used) + len(reader.skipped) == 312
  parameters = sum(int(np.prod(e["shape"])) for e in manifest["state_dict_keys"]
                   if e["kind"] == "parameter")
  assert parameters == manifest["parameter_count"] == 68_427_303
  assert sum(leaf.size for leaf in jax.tree.leaves(variables["params"])) == parameters
  assert jax.tree.structure(variables) == jax.tree.structure(expected)


@pytest.fixture(scope="module")
def mn04_tensors(mn_dir):
  return mn_convert.read_tensors(mn_dir / "mn04_as_mAP_432.pt")


def test_width_is_inferred_from_channels(mn04_tensors):
  assert mn_convert.infer_width(mn04_tensors) == 0.4
  # Another width's channel counts: the stem of width 1.0 is 16 channels.
  changed = dict(mn04_tensors, **{"features.0.0.weight": np.zeros((16, 1, 3, 3), np.float32)})
  assert mn_convert.infer_width(changed) is None


@pytest.mark.parametrize("edit, overrides, message", [
    (lambda t: t.pop("features.5.block.1.1.running_var"), {},
     "missing upstream keys: ['features.5.block.1.1.running_var']"),
    (lambda t: t.update({"features.17.0.weight": np.zeros((8, 8, 1, 1))}), {},
     "unknown upstream keys (not part of this architecture): ['features.17.0.weight']"),
    (lambda t: None, {"width": 0.5},
     "do not fit width 0.5 (e.g. classifier.2.weight: 512 channels, width 0.5 has 640); it fits "
     "width 0.4; pass --width"),
    (lambda t: t.update({"features.0.0.weight": np.zeros((16, 1, 3, 3))}), {},
     "no width in 0.01 ... 8.0 fits it"),
    (lambda t: t.pop("features.0.0.weight"), {}, "not an EfficientAT mn state dict"),
    (lambda t: [t.pop(k) for k in ("classifier.5.weight", "classifier.5.bias")], {},
     "only EfficientAT's 'mlp' head is supported"),
    (lambda t: None, {"num_classes": 19},
     "classifier_output/bias: upstream (527,) != model (19,)"),
])
def test_clear_errors(mn04_tensors, edit, overrides, message):
  tensors = dict(mn04_tensors)
  edit(tensors)
  with pytest.raises(ConversionError) as error:
    convert.convert_tensors("mn", tensors, source="mn04_as", config_overrides=overrides)
  assert message in str(error.value)


def test_head_mismatch_starts_a_fresh_head(mn04_tensors):
  with pytest.raises(ConversionError, match="--allow-head-mismatch"):
    convert.convert_tensors("mn", mn04_tensors, source="mn04_as",
                            config_overrides={"num_classes": 19})
  spec, variables = convert.convert_tensors("mn", mn04_tensors, source="mn04_as",
                                            config_overrides={"num_classes": 19},
                                            allow_head_mismatch=True)
  assert spec.num_classes == 19 and spec.output_activation == "softmax"
  head = variables["params"]["classifier_output"]
  assert head["kernel"].shape == (512, 19) and np.all(head["bias"] == 0)
  np.testing.assert_array_equal(variables["params"]["classifier_hidden"]["kernel"],
                                mn04_tensors["classifier.2.weight"].T)
  np.testing.assert_array_equal(variables["params"]["features_3"]["depthwise"]["conv"]["kernel"],
                                mn04_tensors["features.3.block.1.0.weight"].transpose(2, 3, 1, 0))


@pytest.mark.parametrize("wrapper", ["state_dict", "model"])
def test_wrapped_state_dicts_are_accepted(tmp_path, mn04_tensors, wrapper):
  import torch  # pylint: disable=import-outside-toplevel
  path = tmp_path / "wrapped.pt"
  torch.save({wrapper: {k: torch.from_numpy(v) for k, v in mn04_tensors.items()}, "epoch": 3},
             path)
  tensors = mn_convert.read_tensors(path)
  assert sorted(tensors) == sorted(mn04_tensors)
  assert mn_convert.infer_config("mn", tensors)["width"] == 0.4


def test_convert_cli_writes_a_loadable_model(tmp_path, mn_dir, converted):
  out = tmp_path / "mn04_random"
  result = subprocess.run(
      [sys.executable, "-m", "jaxnoise.convert", "--arch", "mn", "--src",
       str(mn_dir / "mn04_random_19cls.pt"), "--out", str(out)],
      capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr
  spec, variables = store.load_model(out)
  assert spec.arch == "mn" and spec.config["width"] == 0.4 and spec.num_classes == 19
  _, reference, _, _ = converted["mn04_random_19cls"]
  for got, want in zip(jax.tree.leaves(variables), jax.tree.leaves(reference)):
    np.testing.assert_array_equal(got, want)
  bad = subprocess.run(
      [sys.executable, "-m", "jaxnoise.convert", "--arch", "mn", "--src",
       str(mn_dir / "mn04_random_19cls.pt"), "--out", str(tmp_path / "bad"), "--width", "1.0"],
      capture_output=True, text=True, check=False)
  assert bad.returncode == 2
  assert bad.stderr.startswith("error: ") and "it fits width 0.4" in bad.stderr
