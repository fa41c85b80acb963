"""The CNN converter (cnn10, tfnet, panns_cnn10): key coverage, errors, round trip, CLI.

The numbers the converted golden checkpoints must reproduce are asserted in test_models_cnn.py.
"""
import json

import jax
import numpy as np
import pytest

from jaxnoise import convert
from jaxnoise.audio import filterbanks
from jaxnoise.cli import run_main
from jaxnoise.convert import __main__ as convert_cli
from jaxnoise.convert import cnn
from jaxnoise.convert.keymap import StateDictReader
from jaxnoise.data.labels import audioset_labels
from jaxnoise.errors import ConversionError
from jaxnoise.models import store

CHECKPOINTS = {
    "cnn10": "cnn10/cnn10_random_19cls.pth",
    "tfnet": "tfnet/tfnet_random_19cls.pth",
    "panns_cnn10": "panns_cnn10/panns_cnn10_random_19cls.pth",
}
MANIFESTS = {"cnn10": "cnn10/manifest.json", "tfnet": "tfnet/manifest.json",
             "panns_cnn10": "panns_cnn10/manifest.json"}


@pytest.fixture(scope="module")
def tensors(golden_dir):
  """arch -> the golden checkpoint's state dict as numpy arrays."""
  return {arch: cnn.read_tensors(golden_dir / path) for arch, path in CHECKPOINTS.items()}


@pytest.fixture(scope="module")
def converted(tensors):
  return {arch: convert.convert_tensors(arch, state, source=arch)
          for arch, state in tensors.items()}


def flat(tree):
  return {jax.tree_util.keystr(path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def skipped_keys(arch, state):
  reader = StateDictReader(state, arch)
  cnn.to_flax(arch, reader, cnn.infer_config(arch, state))
  return {key for key in reader.skipped if not key.endswith("num_batches_tracked")}


@pytest.mark.parametrize("arch", sorted(CHECKPOINTS))
def test_only_tensors_unused_by_upstream_forward_are_skipped(arch, tensors, golden_dir):
  manifest = json.loads((golden_dir / MANIFESTS[arch]).read_text())
  skipped = skipped_keys(arch, tensors[arch])
  if arch == "panns_cnn10":
    assert skipped == set(cnn.PANNS_FRONTEND_SHAPES)
    return
  # The manifests list unused parameters; the unused BatchNorms' running stats go with them.
  unused_parameters = set(manifest["unused_parameters"])
  unused_norms = {key.rsplit(".", 1)[0] for key in unused_parameters
                  if key.endswith(".bias") and (".bnz." in key or ".bn." in key)}
  unused_stats = {f"{norm}.{stat}" for norm in unused_norms
                  for stat in ("running_mean", "running_var")}
  assert skipped == unused_parameters | unused_stats


def test_panns_frozen_frontend_tensors_equal_what_the_frontend_computes(tensors):
  """The skipped DFT kernels and mel matrix are recomputed; they agree with upstream's."""
  state = tensors["panns_cnn10"]
  np.testing.assert_allclose(state["logmel_extractor.melW"],
                             filterbanks.slaney_mel(32000, 1024, 64, 50.0, 14000.0), atol=1e-7)
  window = filterbanks.hann(1024, symmetric=False)
  angle = 2 * np.pi * np.arange(513)[:, None] * np.arange(1024)[None, :] / 1024
  np.testing.assert_allclose(state["spectrogram_extractor.stft.conv_real.weight"][:, 0],
                             window * np.cos(angle), atol=1e-7)
  np.testing.assert_allclose(state["spectrogram_extractor.stft.conv_imag.weight"][:, 0],
                             -window * np.sin(angle), atol=1e-7)


def test_published_panns_audioset_layout_converts(golden_dir):
  manifest = json.loads((golden_dir / "panns_cnn10" / "cnn10_audioset527_keys.json").read_text())
  zeros = {entry["key"]: np.zeros(entry["shape"], dtype=entry["dtype"])
           for entry in manifest["state_dict"]}
  assert len(zeros) == manifest["state_dict_entries"] == 60
  spec, variables = convert.convert_tensors("panns_cnn10", zeros, source="manifest")
  assert spec.num_classes == 527
  assert spec.labels == audioset_labels()
  assert variables["params"]["fc_audioset"]["kernel"].shape == (512, 527)
  trainable = sum(leaf.size for leaf in jax.tree.leaves(variables["params"]))
  assert trainable == manifest["param_count_trainable"] == 5_219_279


def test_bare_state_dict_file_converts_the_same(tensors, converted, tmp_path):
  torch = pytest.importorskip("torch")
  path = tmp_path / "bare.pth"
  torch.save({key: torch.from_numpy(np.array(value)) for key, value in tensors["tfnet"].items()},
             path)
  _, variables = convert.convert_checkpoint("tfnet", path)
  want = flat(converted["tfnet"][1])
  have = flat(variables)
  assert have.keys() == want.keys()
  assert all(np.array_equal(have[key], want[key]) for key in want)


def test_unknown_key_is_an_error(tensors):
  state = dict(tensors["cnn10"], **{"conv_block5.conv1.weight": np.zeros((8, 8, 3, 3))})
  with pytest.raises(ConversionError, match=r"unknown upstream keys.*conv_block5\.conv1\.weight"):
    convert.convert_tensors("cnn10", state, source="modified")


def test_missing_key_is_an_error(tensors):
  state = dict(tensors["tfnet"])
  del state["tfblock3.bnb.running_var"]
  del state["tfblock2.alpha"]
  with pytest.raises(ConversionError, match="missing upstream keys") as error:
    convert.convert_tensors("tfnet", state, source="modified")
  assert "tfblock3.bnb.running_var" in str(error.value)
  assert "tfblock2.alpha" in str(error.value)


def test_misshaped_key_is_an_error(tensors):
  state = dict(tensors["panns_cnn10"])
  state["conv_block2.conv1.weight"] = np.zeros((128, 64, 5, 5), np.float32)
  with pytest.raises(ConversionError, match=r"mis-shaped: params/conv_block2/conv1/kernel"):
    convert.convert_tensors("panns_cnn10", state, source="modified")


def test_misshaped_frozen_frontend_is_an_error(tensors):
  state = dict(tensors["panns_cnn10"])
  state["logmel_extractor.melW"] = np.zeros((513, 128), np.float32)
  with pytest.raises(ConversionError, match=r"logmel_extractor\.melW has shape \(513, 128\)"):
    convert.convert_tensors("panns_cnn10", state, source="modified")


def test_a_checkpoint_of_another_architecture_is_an_error(tensors):
  with pytest.raises(ConversionError, match="no 'fc_audioset.weight' in the checkpoint"):
    convert.convert_tensors("panns_cnn10", tensors["cnn10"], source="cnn10 file")
  with pytest.raises(ConversionError, match="missing upstream keys.*tfblock1"):
    convert.convert_tensors("tfnet", tensors["cnn10"], source="cnn10 file")


def test_head_mismatch_fails_unless_allowed(tensors, converted):
  overrides = {"num_classes": 5}
  with pytest.raises(ConversionError, match="params/fc/kernel.*--allow-head-mismatch"):
    convert.convert_tensors("tfnet", tensors["tfnet"], source="golden",
                            config_overrides=overrides)
  spec, variables = convert.convert_tensors("tfnet", tensors["tfnet"], source="golden",
                                            config_overrides=overrides, allow_head_mismatch=True)
  assert spec.num_classes == 5
  assert variables["params"]["fc"]["kernel"].shape == (512, 5)
  original = flat(converted["tfnet"][1])
  for key, value in flat(variables).items():
    if "'fc'" not in key:
      np.testing.assert_array_equal(value, original[key], err_msg=key)


def test_allow_head_mismatch_never_hides_other_mismatches(tensors):
  state = dict(tensors["cnn10"])
  state["conv_block1.conv1.weight"] = np.zeros((64, 1, 5, 5), np.float32)
  with pytest.raises(ConversionError, match="params/conv_block1/conv1/kernel"):
    convert.convert_tensors("cnn10", state, source="modified", allow_head_mismatch=True,
                            config_overrides={"num_classes": 5})


@pytest.mark.parametrize("arch", sorted(CHECKPOINTS))
def test_round_trip_through_a_model_directory_is_exact(arch, converted, tmp_path):
  spec, variables = converted[arch]
  directory = store.save_model(tmp_path / arch, spec, variables, source={"test": arch})
  loaded_spec, loaded_variables = store.load_model(directory)
  assert loaded_spec.arch == arch and loaded_spec.labels == spec.labels
  clip = np.random.default_rng(1).normal(0, 0.1, (2, spec.clip_samples)).astype(np.float32)
  want = spec.apply(variables, clip)
  have = loaded_spec.apply(loaded_variables, clip)
  for key in ("logits", "embedding"):
    np.testing.assert_array_equal(np.asarray(have[key]), np.asarray(want[key]))


def test_convert_cli_writes_a_loadable_model(golden_dir, tmp_path, converted):
  out = tmp_path / "tfnet_model"
  assert convert_cli.main(["--arch", "tfnet", "--src", str(golden_dir / CHECKPOINTS["tfnet"]),
                           "--out", str(out)]) == 0
  config = json.loads((out / "config.json").read_text())
  assert config["arch"] == "tfnet" and config["config"]["num_classes"] == 19
  assert config["source"]["sha256"] == store.file_sha256(golden_dir / CHECKPOINTS["tfnet"])
  _, variables = store.load_model(out)
  want = flat(converted["tfnet"][1])
  assert all(np.array_equal(value, want[key]) for key, value in flat(variables).items())


def test_convert_cli_reports_a_wrong_architecture_clearly(golden_dir, tmp_path, capsys):
  argv = ["--arch", "tfnet", "--src", str(golden_dir / CHECKPOINTS["cnn10"]),
          "--out", str(tmp_path / "never")]
  assert run_main(convert_cli.main, argv) == 2
  message = capsys.readouterr().err
  assert message.startswith("error: cannot convert") and "conv_block1.conv1.weight" in message
  assert not (tmp_path / "never").exists()
