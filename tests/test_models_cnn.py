"""CNN10, TFNet and PANNs Cnn10 against the upstream PyTorch outputs in ../shared/golden.

The golden checkpoints go through the converter; every intermediate stored in each ``io.npz`` is
compared, both from the stored input features and end to end from the waveform through jaxnoise's
frontends. Tolerances are those the golden READMEs state for a float32 port.
"""
import json
import textwrap

import jax
import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import run_on_cpu_devices
from jaxnoise import convert
from jaxnoise.errors import ConfigError
from jaxnoise.models import layers, registry, summary

CHECKPOINTS = {
    "cnn10": "cnn10/cnn10_random_19cls.pth",
    "tfnet": "tfnet/tfnet_random_19cls.pth",
    "panns_cnn10": "panns_cnn10/panns_cnn10_random_19cls.pth",
}
GOLDEN_FOLDER = {"cnn10": "cnn10", "tfnet": "tfnet", "panns_cnn10": "panns_cnn10"}


def nchw(x):
  """Our ``[batch, time, mel, channels]`` -> PyTorch ``(batch, channels, time, mel)``."""
  return np.transpose(np.asarray(x), (0, 3, 1, 2))


def first(tree, name):
  return np.asarray(tree[name][0])


def log_softmax(run):
  return jax.nn.log_softmax(run["logits"])


# golden key -> (our value from a run, atol, rtol). A run holds 'logits', 'embedding',
# 'intermediates' and 'variables'.
def _tfnet_repo_checks(block_prefix, block_tolerance):
  checks = {
      "logits": (lambda run: run["logits"], 1e-4, 0.0),
      "log_probs": (log_softmax, 1e-4, 0.0),
      "log_probs_float64": (log_softmax, 1e-4, 0.0),
      "probs": (lambda run: jnp.exp(log_softmax(run)), 1e-4, 0.0),
      "pooled_fc_in": (lambda run: run["embedding"], 1e-4, 1e-4),
  }
  for k in range(1, 5):
    checks[f"{block_prefix}{k}_out_first1"] = (
        lambda run, k=k: nchw(first(run["intermediates"], f"{block_prefix}{k}_out"))[:1],
        block_tolerance, block_tolerance)
  return checks


CHECKS = {
    "cnn10": _tfnet_repo_checks("conv_block", 1e-4),
    "tfnet": _tfnet_repo_checks("tfblock", 2e-4),
    "panns_cnn10": {
        "logits": (lambda run: run["logits"], 1e-4, 0.0),
        "clipwise_output": (lambda run: jax.nn.sigmoid(run["logits"]), 1e-5, 0.0),
        "clipwise_output_float64": (lambda run: jax.nn.sigmoid(run["logits"]), 1e-5, 0.0),
        "embedding": (lambda run: run["embedding"], 1e-4, 0.0),
        "fc1_out_prerelu": (lambda run: first(run["intermediates"], "fc1_out_prerelu"), 1e-4,
                            0.0),
        "pooled_fc1_in": (lambda run: first(run["intermediates"], "pooled"), 1e-4, 1e-4),
        "bn0_out": (lambda run: first(run["intermediates"], "bn0_out")[:, None], 1e-4, 1e-4),
        "conv_block1_out_clip0_first64frames": (
            lambda run: nchw(first(run["intermediates"], "conv_block1_out"))[:1, :, :64],
            1e-4, 1e-4),
        **{f"conv_block{k}_out_clip0": (
            lambda run, k=k: nchw(first(run["intermediates"], f"conv_block{k}_out"))[:1],
            1e-4, 1e-4) for k in (2, 3, 4)},
    },
}


def _attention_checks(block):
  """TF-block ``block``'s attention tensors and mixing weights."""
  def sown(name, add_channel=False):
    def extract(run):
      value = first(run["intermediates"][block], name)
      return value[:, None] if add_channel else value
    return extract
  return {
      f"{block}_bnx_out": (sown("bnx_out", add_channel=True), 2e-4, 2e-4),
      f"{block}_bny_out": (sown("bny_out", add_channel=True), 2e-4, 2e-4),
      f"{block}_freq_attention": (sown("freq_attention"), 1e-4, 0.0),
      f"{block}_time_attention": (sown("time_attention"), 1e-4, 0.0),
      f"{block}_softmax_alpha": (sown("softmax_alpha"), 1e-6, 0.0),
      f"{block}_alpha": (lambda run: run["variables"]["params"][block]["alpha"], 0.0, 0.0),
  }


for _k in range(1, 5):
  CHECKS["tfnet"].update(_attention_checks(f"tfblock{_k}"))

# Keys that are inputs, names or frontend outputs rather than network results.
NOT_NETWORK_OUTPUTS = {"clip_names", "esc50_targets", "logmel_raw", "input_feature", "logmel"}


@pytest.fixture(scope="module")
def converted(golden_dir):
  """arch -> (spec, variables) of the golden checkpoints, through the converter."""
  return {arch: convert.convert_checkpoint(arch, golden_dir / path)
          for arch, path in CHECKPOINTS.items()}


@pytest.fixture(scope="module")
def golden(golden_dir):
  arrays = {arch: dict(np.load(golden_dir / folder / "io.npz"))
            for arch, folder in GOLDEN_FOLDER.items()}
  arrays["frontends"] = dict(np.load(golden_dir / "frontends" / "io.npz"))
  return arrays


def stored_features(arch, golden):
  if arch == "panns_cnn10":
    return golden[arch]["logmel"][:, 0]           # (batch, 1, time, mel) -> (batch, time, mel)
  return golden[arch]["input_feature"][:, 0]      # channel 0 is all the models read


def waveform(arch, golden):
  if arch == "panns_cnn10":
    return golden["frontends"]["wav32"]
  return (golden["frontends"]["wav44_int16"] / 32768.0).astype(np.float32)


@pytest.fixture(scope="module")
def runs(converted, golden):
  """(arch, source) -> a run of the network on the stored features or on our frontend's."""
  results = {}
  for arch, (spec, variables) in converted.items():
    inputs = {"features": stored_features(arch, golden),
              "waveform": spec.features(waveform(arch, golden))}
    for source, features in inputs.items():
      outputs, state = spec.network.apply(variables, features, train=False,
                                          mutable=["intermediates"])
      results[arch, source] = dict(outputs, intermediates=state["intermediates"],
                                   variables=variables, features=features)
  return results


@pytest.mark.parametrize("source", ["features", "waveform"])
@pytest.mark.parametrize("arch", sorted(CHECKPOINTS))
def test_every_golden_output_is_reproduced(arch, source, runs, golden):
  run = runs[arch, source]
  expected_keys = set(golden[arch]) - NOT_NETWORK_OUTPUTS
  assert expected_keys == set(CHECKS[arch]), "a golden array is not compared"
  failures = []
  for key, (ours, atol, rtol) in CHECKS[arch].items():
    want = golden[arch][key]
    have = np.asarray(ours(run))
    assert have.shape == want.shape, key
    if not np.allclose(have, want, atol=atol, rtol=rtol):
      failures.append(f"{key}: max abs {np.max(np.abs(have - want)):.3g} (atol {atol})")
  assert not failures, failures


@pytest.mark.parametrize("arch", ["cnn10", "tfnet"])
def test_tfnet_frontend_reproduces_the_stored_model_input(arch, runs, golden):
  features = np.asarray(runs[arch, "waveform"]["features"])
  np.testing.assert_allclose(features, golden[arch]["input_feature"][:, 0], atol=1e-5)


def test_panns_frontend_reproduces_the_stored_logmel(runs, golden):
  features = np.asarray(runs["panns_cnn10", "waveform"]["features"])
  np.testing.assert_allclose(features, golden["panns_cnn10"]["logmel"][:, 0], atol=2e-3)


@pytest.mark.parametrize("arch", sorted(CHECKPOINTS))
def test_jit_and_vmap_over_clips_equal_a_loop(arch, converted, golden):
  spec, variables = converted[arch]
  clips = jnp.asarray(waveform(arch, golden)[:3])

  def one_clip(clip):
    return spec.apply(variables, clip[None])["logits"][0]

  looped = np.stack([jax.jit(one_clip)(clip) for clip in clips])
  mapped = jax.jit(jax.vmap(one_clip))(clips)
  batched = jax.jit(lambda x: spec.apply(variables, x)["logits"])(clips)
  np.testing.assert_allclose(mapped, looped, atol=1e-5)
  np.testing.assert_allclose(batched, looped, atol=1e-5)


@pytest.mark.parametrize("arch", sorted(CHECKPOINTS))
def test_a_silent_clip_gives_finite_scores(arch, converted):
  spec, variables = converted[arch]
  silence = jnp.zeros((1, spec.clip_samples), jnp.float32)
  scores = spec.scores(spec.apply(variables, silence)["logits"])
  assert np.all(np.isfinite(scores))


def test_panns_takes_any_clip_length_without_padding(converted, golden):
  """Upstream inference feeds files unpadded; 2 s gives 201 frames and still one score each."""
  spec, variables = converted["panns_cnn10"]
  short = jnp.asarray(golden["frontends"]["wav32"][:1, :64000])
  assert spec.features(short).shape == (1, 201, 64)
  assert spec.apply(variables, short)["logits"].shape == (1, 19)


def test_panns_dropout_acts_in_training_only(converted, golden):
  spec, variables = converted["panns_cnn10"]
  features = stored_features("panns_cnn10", golden)[:2]

  def train_step(seed):
    outputs, _ = spec.network.apply(variables, features, train=True,
                                    rngs={"dropout": jax.random.key(seed)},
                                    mutable=["batch_stats"])
    return np.asarray(outputs["embedding"])

  evaluated = spec.network.apply(variables, features, train=False)["embedding"]
  np.testing.assert_array_equal(train_step(0), train_step(0))
  assert not np.allclose(train_step(0), train_step(1))
  assert not np.allclose(train_step(0), evaluated)


def test_batch_norm_trains_like_pytorch():
  """Batch statistics normalise, and the running variance takes the UNBIASED batch variance."""
  torch = pytest.importorskip("torch")
  inputs = np.random.default_rng(0).normal(2.0, 3.0, (4, 5, 6, 7)).astype(np.float32)
  reference = torch.nn.BatchNorm2d(7)
  with torch.no_grad():
    reference.weight.uniform_(0.5, 1.5)
    reference.bias.normal_()
    reference.running_mean.normal_()
    reference.running_var.uniform_(0.5, 2.0)
  variables = {
      "params": {"scale": reference.weight.detach().numpy().copy(),
                 "bias": reference.bias.detach().numpy().copy()},
      "batch_stats": {"mean": reference.running_mean.numpy().copy(),
                      "var": reference.running_var.numpy().copy()}}
  want = reference.train()(torch.from_numpy(inputs).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
  have, updates = layers.BatchNorm().apply(variables, inputs, use_running_average=False,
                                           mutable=["batch_stats"])
  np.testing.assert_allclose(have, want.detach().numpy(), atol=1e-5)
  np.testing.assert_allclose(updates["batch_stats"]["mean"], reference.running_mean.numpy(),
                             atol=1e-6)
  np.testing.assert_allclose(updates["batch_stats"]["var"], reference.running_var.numpy(),
                             rtol=1e-6)
  evaluated = layers.BatchNorm().apply(updates | {"params": variables["params"]}, inputs,
                                       use_running_average=True)
  reference.eval()
  want_eval = reference(torch.from_numpy(inputs).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
  np.testing.assert_allclose(evaluated, want_eval.detach().numpy(), atol=1e-5)


@pytest.mark.parametrize("arch, overrides, trainable", [
    # Upstream counts 4,958,547 including fc2 (262,656), which its forward never calls.
    ("cnn10", {}, 4_695_891),
    # Upstream 4,963,213 including per-block bnz, fc1, fc2, downsample and bn, never called.
    ("tfnet", {}, 4_701_679),
    # Upstream trainable count; its 6,302,735 total adds the frozen frontend tensors.
    ("panns_cnn10", {}, 5_219_279),
    ("panns_cnn10", {"num_classes": 19}, 4_958_675),
])
def test_parameter_counts_equal_upstream_used_in_forward(arch, overrides, trainable):
  counts = summary.summarise(registry.build_spec(arch, overrides))
  assert counts["trainable"] == trainable
  assert counts["total"] == counts["trainable"] + counts["batch_stats"]


def test_summary_cli_prints_the_counts(capsys):
  assert summary.main(["tfnet", "--num-classes", "19"]) == 0
  printed = capsys.readouterr().out
  assert "4,701,679" in printed
  # Upstream's BN buffers of the layers used in forward, less one step counter per BN (24).
  assert "7,696" in printed


@pytest.mark.parametrize("arch", sorted(CHECKPOINTS))
def test_spec_describes_the_upstream_pipeline(arch):
  spec = registry.build_spec(arch)
  json.dumps(dict(spec.config))
  if arch == "panns_cnn10":
    assert (spec.sample_rate, spec.band, spec.output_activation) == (32000, (50.0, 14000.0),
                                                                     "sigmoid")
    assert spec.num_classes == 527 and spec.clip_seconds == 5.0
    assert spec.labels[:2] == ("Speech", "Male speech, man speaking")
    assert registry.build_spec(arch, {"num_classes": 19}).labels[-1] == "class_18"
  else:
    assert (spec.sample_rate, spec.band, spec.output_activation) == (44100, (50.0, 11025.0),
                                                                     "softmax")
    assert spec.labels == tuple(f"class_{i}" for i in range(19))
    assert spec.clip_samples == 220500


def test_labels_and_clip_length_come_from_the_config():
  spec = registry.build_spec("cnn10", {"num_classes": 2, "labels": ["dog", "rain"]})
  assert spec.labels == ("dog", "rain")
  with pytest.raises(ConfigError, match="3 labels given for num_classes=2"):
    registry.build_spec("tfnet", {"num_classes": 2, "labels": ["a", "b", "c"]})
  with pytest.raises(ConfigError, match="num_classes must be a positive integer"):
    registry.build_spec("cnn10", {"num_classes": 0})
  with pytest.raises(ConfigError, match="clip_seconds must be a positive number"):
    registry.build_spec("panns_cnn10", {"clip_seconds": -5})
  assert registry.build_spec("panns_cnn10", {"clip_seconds": 10}).clip_samples == 320000


def reference_convolution(inputs, kernel):
  return jax.lax.conv_general_dilated(inputs, kernel, (1, 1), ((1, 1), (1, 1)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


# Kernel gradients in another summation order than XLA's (float32 sums of 4,800 products): measured
# error 1.1e-4, 1.4e-4 and 2.4e-4 with largest values 171, 217 and 264 (6.2e-7, 6.3e-7 and 9.3e-7
# of the largest; the bound is that with a margin); the small map runs XLA's own computation.
@pytest.mark.parametrize("shape, out_channels, shifted, relative_error", [
    ((2, 40, 60, 1), 8, True, 7.5e-7),  # one input channel (CNN10's first convolution)
    ((2, 40, 60, 5), 6, True, 7.5e-7),  # a large map, narrow input: the nine views in one product
    ((2, 40, 60, 80), 6, True, 1.1e-6),  # a wider input: nine products per clip
    ((3, 10, 12, 4), 3, False, 0.0),  # a small map: XLA's own kernel gradient
])
def test_convolution_gradients_equal_xla_autodiff(shape, out_channels, shifted, relative_error):
  assert (shape[1] * shape[2] >= layers.SHIFTED_KERNEL_GRADIENT_MIN_AREA) == shifted
  rng = np.random.default_rng(0)
  inputs = jnp.asarray(rng.normal(size=shape), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(3, 3, shape[-1], out_channels)), jnp.float32)
  output_gradient = jnp.asarray(rng.normal(size=shape[:-1] + (out_channels,)), jnp.float32)
  have, have_vjp = jax.vjp(jax.jit(layers.convolve_same_3x3), inputs, kernel)
  want, want_vjp = jax.vjp(reference_convolution, inputs, kernel)
  np.testing.assert_array_equal(have, want)
  have_inputs, have_kernel = have_vjp(output_gradient)
  want_inputs, want_kernel = want_vjp(output_gradient)
  np.testing.assert_array_equal(have_inputs, want_inputs)
  assert (9 * shape[-1] <= layers.STACKED_VIEWS_MAX_COLUMNS) == (shape[-1] < 80)
  scale = float(jnp.max(jnp.abs(want_kernel)))
  np.testing.assert_allclose(have_kernel, want_kernel, rtol=0, atol=relative_error * scale)


SPLIT_KERNEL_GRADIENT_SCRIPT = textwrap.dedent("""
    import json
    import jax, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec
    from jaxnoise.models import layers
    assert jax.device_count() == 2, jax.devices()
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(6, 40, 60, 80)).astype(np.float32)
    gradient = rng.normal(size=(6, 40, 60, 6)).astype(np.float32)
    mesh = Mesh(np.asarray(jax.devices()), ("data",))

    def split(inputs, gradient):
      with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
        return layers.kernel_gradient_by_shifts(inputs, gradient)

    with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
      groups = layers.clip_groups(6)
    sharded = [jax.device_put(a, NamedSharding(mesh, PartitionSpec("data")))
               for a in (inputs, gradient)]
    compiled = jax.jit(split).lower(*sharded).compile()
    have = np.asarray(compiled(*sharded))
    want = np.asarray(jax.jit(layers.kernel_gradient_by_shifts)(inputs, gradient))
    print("RESULT" + json.dumps({
        "groups": groups, "no_mesh_groups": layers.clip_groups(6),
        "all_gather": "all-gather" in compiled.as_text(),
        "loop_steps_3": '"known_trip_count":{"n":"3"}' in compiled.as_text(),
        "error": float(np.max(np.abs(have - want))), "scale": float(np.max(np.abs(want)))}))
""")


def test_kernel_gradient_on_two_devices_loops_over_each_devices_own_clips():
  # Under the training step's mesh each device sums the kernel gradient of its own 3 clips; a loop
  # over the sharded batch axis gathered all 6 clips onto both devices and computed it twice.
  result = run_on_cpu_devices(SPLIT_KERNEL_GRADIENT_SCRIPT, 2)
  assert (result["groups"], result["no_mesh_groups"]) == (2, 1)
  assert not result["all_gather"] and result["loop_steps_3"]
  # Two sums of 3 clips added, against one sum of 6: measured 6.1e-5 with a largest value of 418
  # (1.5e-7 of it).
  assert result["error"] <= 2e-7 * result["scale"], result


def test_conv3x3_has_the_parameters_of_a_flax_convolution():
  inputs = jnp.ones((1, 6, 8, 3))
  ours = layers.conv3x3(5, name="conv").init(jax.random.key(0), inputs)
  flax_conv = nn.Conv(5, (3, 3), padding=((1, 1), (1, 1)), use_bias=False)
  theirs = flax_conv.init(jax.random.key(0), inputs)
  assert jax.tree.map(jnp.shape, ours) == jax.tree.map(jnp.shape, theirs)
  np.testing.assert_array_equal(ours["params"]["kernel"], theirs["params"]["kernel"])
  np.testing.assert_allclose(layers.conv3x3(5, name="conv").apply(ours, inputs),
                             flax_conv.apply(theirs, inputs), rtol=1e-6)
