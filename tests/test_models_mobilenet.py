"""The Flax MobileNetV3 ("mn") on its own: channel plan, parameter counts, convolution algorithms,
padding, train/eval behaviour, jit/vmap, spec. Golden-checkpoint checks are in
test_convert_mobilenet.py."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnoise.data import labels as label_sets
from jaxnoise.errors import ConfigError
from jaxnoise.models import mobilenet, registry

FRAMES = 100  # a 1-second log-mel keeps these tests fast; the network accepts any length


def param_count(tree) -> int:
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


@pytest.fixture(scope="module")
def mn04():
  """mn04 (19 classes) with random variables, a batch of log-mels, and its jitted eval forward."""
  spec = registry.build_spec("mn", {"width": 0.4, "num_classes": 19})
  features = jax.random.normal(jax.random.key(1), (3, FRAMES, 128))
  return spec, mobilenet.random_variables(spec), features, jax.jit(spec.network.apply)


def test_round_channels_is_efficientat_make_divisible():
  # nearest multiple of 8, at least 8, +8 when more than 10% below the request.
  assert [mobilenet.round_channels(v) for v in (1.6, 6.4, 12, 19.2, 35.5, 35.6, 67.2)] == [
      8, 8, 16, 24, 32, 40, 64]


def test_channel_plan_of_mn04_matches_upstream_readme():
  plan = mobilenet.architecture(0.4)
  assert plan.stem_channels == 8
  assert [block.out_channels for block in plan.blocks] == [
      8, 16, 16, 16, 16, 16, 32, 32, 32, 32, 48, 48, 64, 64, 64]
  assert plan.last_conv_channels == 384 and plan.hidden_channels == 512
  assert [b.squeeze_channels for b in plan.blocks if b.squeeze_channels] == [
      8, 16, 16, 48, 72, 72, 96, 96]
  assert not plan.blocks[0].has_expand and plan.blocks[1].has_expand


@pytest.mark.parametrize("width, num_classes, expected", [
    (4.0, 527, 68_427_303),  # mn40_as_ext (golden/mn/mn40_as_ext.keys.json)
    (0.4, 527, 983_599),     # mn04_as
    (0.4, 19, 722_995),      # mn04_random_19cls
])
def test_parameter_count_equals_upstream(width, num_classes, expected):
  spec = registry.build_spec("mn", {"width": width, "num_classes": num_classes})
  shapes = jax.eval_shape(spec.init, jax.random.key(0))
  assert param_count(shapes["params"]) == expected


@pytest.mark.parametrize("kernel_size, stride", [(3, 1), (3, 2), (5, 1), (5, 2)])
def test_shifted_products_equal_grouped_convolution(kernel_size, stride):
  # Odd and even sizes: 125 -> 63 is where PyTorch padding and 'SAME' part ways.
  inputs = jax.random.normal(jax.random.key(0), (2, 16, 125, 6))
  depthwise = jax.random.normal(jax.random.key(1), (kernel_size, kernel_size, 1, 6))
  fast_conv = jax.jit(mobilenet.shifted_products_conv, static_argnums=2)
  reference_conv = jax.jit(mobilenet.lax_conv, static_argnums=2)
  fast = fast_conv(inputs, depthwise, stride)
  reference = reference_conv(inputs, depthwise, stride)
  assert fast.shape == reference.shape == (
      2, mobilenet.output_size(16, kernel_size, stride), mobilenet.output_size(125, kernel_size,
                                                                               stride), 6)
  np.testing.assert_allclose(fast, reference, atol=1e-5)
  # One input channel feeding many outputs (the stem).
  stem = jax.random.normal(jax.random.key(2), (kernel_size, kernel_size, 1, 8))
  np.testing.assert_allclose(fast_conv(inputs[..., :1], stem, stride),
                             reference_conv(inputs[..., :1], stem, stride), atol=1e-5)


# Largest differences measured over the eight cases: input 7.6e-6 absolute; kernel 1.86e-6 of the
# largest kernel gradient (sums of 2000 products per clip, added one after another in one pass).
INPUT_ATOL = 1e-5
KERNEL_RELATIVE_TOLERANCE = 2.5e-6


# Batch 9 takes the CPU path that sums the kernel gradient four clips at a time, remainder included.
@pytest.mark.parametrize("batch", [2, 9])
@pytest.mark.parametrize("kernel_size, stride", [(3, 1), (3, 2), (5, 1), (5, 2)])
def test_shifted_products_gradients_equal_grouped_convolution(kernel_size, stride, batch):
  """The hand-written backward pass against JAX's autodiff of ``lax.conv_general_dilated``."""
  inputs = jax.random.normal(jax.random.key(0), (batch, 16, 125, 6))
  cotangent_key = jax.random.key(3)

  def gradients(conv, kernel, x):
    out_shape = jax.eval_shape(lambda: conv(x, kernel, stride)).shape
    weights = jax.random.normal(cotangent_key, out_shape)
    return jax.jit(jax.grad(lambda x, k: jnp.sum(conv(x, k, stride) * weights),
                            argnums=(0, 1)))(x, kernel)

  for kernel, x in ((jax.random.normal(jax.random.key(1), (kernel_size, kernel_size, 1, 6)),
                     inputs),
                    (jax.random.normal(jax.random.key(2), (kernel_size, kernel_size, 1, 8)),
                     inputs[..., :1])):  # the stem: one input channel, many outputs
    fast = gradients(mobilenet.shifted_products_conv, kernel, x)
    reference = gradients(mobilenet.lax_conv, kernel, x)
    for name, a, b in zip(("input", "kernel"), fast, reference):
      assert a.shape == b.shape, name
    np.testing.assert_allclose(fast[0], reference[0], atol=INPUT_ATOL)
    kernel_error = float(jnp.max(jnp.abs(fast[1] - reference[1])) / jnp.max(jnp.abs(reference[1])))
    assert kernel_error <= KERNEL_RELATIVE_TOLERANCE


def test_padding_is_pytorch_symmetric_not_same():
  # A single 1 at the top-left corner: with padding (1, 1) a stride-2 3x3 kernel sees it at tap
  # (1, 1) of output (0, 0); 'SAME' pads (0, 1) on even sizes and would see it at tap (0, 0).
  inputs = jnp.zeros((1, 8, 8, 1)).at[0, 0, 0, 0].set(1.0)
  kernel = jnp.arange(9.0).reshape(3, 3, 1, 1)
  assert float(mobilenet.shifted_products_conv(inputs, kernel, 2)[0, 0, 0, 0]) == 4.0
  assert float(mobilenet.lax_conv(inputs, kernel, 2)[0, 0, 0, 0]) == 4.0


def test_sizes_through_the_network_follow_pytorch(mn04):
  spec, variables, _, _ = mn04
  features = jnp.zeros((1, 500, 128))
  _, state = jax.eval_shape(
      lambda v, x: spec.network.apply(v, x, mutable=["intermediates"]), variables, features)
  shapes = {name: value[0].shape for name, value in state["intermediates"].items()}
  assert shapes["features_0_output"] == (1, 64, 250, 8)
  assert shapes["features_2_output"] == (1, 32, 125, 16)
  assert shapes["features_4_output"] == (1, 16, 63, 16)
  assert shapes["features_7_output"] == (1, 8, 32, 32)
  assert shapes["features_16_output"] == (1, 4, 16, 384)


def test_conv_algorithms_give_the_same_network(mn04):
  spec, variables, features, apply = mn04
  fast = apply(variables, features)
  reference = jax.jit(spec.network.clone(conv_algorithm="feature_group_count").apply)(variables,
                                                                                     features)
  np.testing.assert_allclose(fast["logits"], reference["logits"], atol=1e-5)
  np.testing.assert_allclose(fast["embedding"], reference["embedding"], atol=1e-5, rtol=1e-5)


def test_jit_and_vmap_equal_the_batched_call(mn04):
  spec, variables, features, apply = mn04
  batched = apply(variables, features)["logits"]
  per_clip = jax.jit(jax.vmap(
      lambda clip: spec.network.apply(variables, clip[None])["logits"][0]))(features)
  np.testing.assert_allclose(per_clip, batched, atol=1e-5)
  assert batched.shape == (3, 19)


def test_train_mode_updates_batch_stats_and_uses_dropout(mn04):
  spec, variables, features, _ = mn04
  apply = jax.jit(lambda rng: spec.network.apply(variables, features, train=True,
                                                 rngs={"dropout": rng}, mutable=["batch_stats"]))
  first, updates = apply(jax.random.key(0))
  second, _ = apply(jax.random.key(1))
  assert not np.allclose(first["logits"], second["logits"])
  # Stem BatchNorm: running mean <- 0.99 old + 0.01 batch mean (PyTorch momentum 0.01) ...
  kernel = variables["params"]["features_0"]["conv"]["kernel"]
  stem = mobilenet.lax_conv(jnp.swapaxes(features, 1, 2)[..., None], kernel, 2)
  old = variables["batch_stats"]["features_0"]["norm"]
  new = updates["batch_stats"]["features_0"]["norm"]
  np.testing.assert_allclose(new["mean"], 0.99 * old["mean"] + 0.01 * stem.mean(axis=(0, 1, 2)),
                             rtol=1e-4, atol=1e-6)
  # ... and running var with the unbiased batch variance, as PyTorch.
  unbiased = np.var(np.asarray(stem).reshape(-1, stem.shape[-1]), axis=0, ddof=1)
  np.testing.assert_allclose(new["var"], 0.99 * old["var"] + 0.01 * unbiased, rtol=1e-4)


def test_spec_for_audioset_and_esc_heads():
  audioset = registry.build_spec("mn", {"width": 0.4})
  assert (audioset.sample_rate, audioset.clip_samples, audioset.band) == (32000, 160000,
                                                                          (0.0, 15000.0))
  assert audioset.output_activation == "sigmoid"
  assert audioset.labels == label_sets.audioset_labels()
  esc = registry.build_spec("mn", {"width": 0.4, "num_classes": 19})
  assert esc.output_activation == "softmax" and esc.labels[:2] == ("class_0", "class_1")
  named = registry.build_spec("mn", {"width": 0.4, "num_classes": 2, "labels": ["dog", "rain"]})
  assert named.labels == ("dog", "rain")
  json.dumps(dict(esc.config))
  assert registry.default_config("mn")["width"] == 4.0


@pytest.mark.parametrize("override, message", [
    ({"width": 0}, "'width' must be a positive number"),
    ({"width": "0.4"}, "'width' must be a positive number"),
    ({"num_classes": 0}, "num_classes must be a positive integer"),
    ({"num_classes": 2, "labels": ["dog"]}, "1 labels given for num_classes=2"),
    ({"head_type": "fully_convolutional"}, "'head_type' 'fully_convolutional' is not supported"),
    ({"conv_algorithm": "fft"}, "'conv_algorithm' must be one of"),
    ({"dropout_rate": 1.0}, "'dropout_rate' must be in [0, 1)"),
    ({"depth": 3}, "unknown config key(s) ['depth']"),
])
def test_bad_config_is_named(override, message):
  with pytest.raises(ConfigError) as error:
    registry.build_spec("mn", override)
  assert message in str(error.value)


def test_audioset_labels_in_index_order(golden_dir):
  names = label_sets.audioset_labels()
  assert len(names) == 527 and len(set(names)) == 527
  assert names[0] == "Speech" and names[526] == "Field recording"
  manifest = json.loads((golden_dir / "mn" / "mn04_as.manifest.json").read_text())
  for clip in manifest["top5_audioset_labels"].values():
    assert [names[index] for index in clip["indices"]] == clip["labels"]
  assert label_sets.audioset_classes()[386] == ("/m/01m2v", "Computer keyboard")
