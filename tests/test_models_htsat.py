"""HTS-AT in Flax against the upstream PyTorch outputs in ../shared/golden/htsat, plus closed-form checks.

The golden model (embed dim 32, 19 classes, esc_config) is converted from its Lightning checkpoint
once per module; tolerances are the ones the golden README suggests for a float32 port.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnoise.errors import AudioError, ConfigError
from jaxnoise.models import htsat, registry, swin

GOLDEN_TOLERANCE = {"logmel_db": 1e-3, "bn0_out": 5e-4, "image": 5e-4, "tokens": 5e-4,
                    "outputs": 1e-4}
CLIP_SAMPLES = 160000  # the 5-s ESC-50 clip; the golden waveform is that clip twice


@pytest.fixture(scope="module")
def golden(golden_dir):
  return dict(np.load(golden_dir / "htsat" / "htsat_tiny_esc19.io.npz"))


@pytest.fixture(scope="module")
def converted(golden_dir):
  pytest.importorskip("torch", reason="reading the golden Lightning checkpoint needs torch")
  from jaxnoise import convert  # pylint: disable=import-outside-toplevel
  return convert.convert_checkpoint("htsat", golden_dir / "htsat" / "htsat_tiny_esc19.ckpt")


@functools.lru_cache(maxsize=None)
def jitted_network(network, mutable=()):
  return jax.jit(lambda variables, features: network.apply(
      variables, features, train=False, mutable=list(mutable) or False))


def random_variables(spec, seed=0):
  """Variables of ``spec`` without compiling its init: N(0, 0.02) weights, unit scales and
  variances, zero biases and means."""
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = path[-1].key
    if name in ("scale", "var"):
      return np.ones(leaf.shape, np.float32)
    if name in ("bias", "mean"):
      return np.zeros(leaf.shape, np.float32)
    return rng.normal(0.0, 0.02, leaf.shape).astype(np.float32)

  return jax.tree_util.tree_map_with_path(draw, jax.eval_shape(spec.init, jax.random.key(0)))


def assert_close(actual, expected, tolerance, name):
  error = float(np.max(np.abs(np.asarray(actual, np.float64) - expected)))
  assert error <= tolerance, f"{name}: max abs error {error:.3g} > {tolerance}"


def assert_outputs_match(outputs, golden, prefix=""):
  for key in ("clipwise_output", "framewise_output", "latent_output"):
    assert_close(outputs[key], golden[prefix + key], GOLDEN_TOLERANCE["outputs"], prefix + key)


def test_golden_intermediates_and_outputs_from_logmel(converted, golden):
  spec, variables = converted
  outputs, state = jitted_network(spec.network, ("intermediates",))(
      variables, golden["logmel_db"][:, 0])
  found = {name: value[0] for name, value in state["intermediates"].items()}
  assert_close(found["bn0_out"], golden["bn0_out"][:, 0], GOLDEN_TOLERANCE["bn0_out"], "bn0_out")
  assert_close(found["image"], golden["image_256x256"][:, 0], GOLDEN_TOLERANCE["image"], "image")
  assert_close(found["patch_embed_out"], golden["patch_embed_out"], GOLDEN_TOLERANCE["tokens"],
               "patch_embed_out")
  assert_close(found["stage0_out"], golden["layer0_out_after_patch_merging"],
               GOLDEN_TOLERANCE["tokens"], "layer0_out_after_patch_merging")
  assert_outputs_match(outputs, golden)
  # esc_config's loss is clip_ce: upstream returns the raw logits as clipwise_output.
  assert spec.output_activation == "softmax"
  np.testing.assert_array_equal(outputs["logits"], outputs["clipwise_output"])
  assert_close(spec.scores(outputs["logits"]), golden["clipwise_softmax"], 1e-5, "softmax")


def test_spec_repeats_a_5s_clip_to_10s_as_the_esc_pipeline(converted, golden):
  spec, variables = converted
  clip = golden["waveform"][:, :CLIP_SAMPLES]
  np.testing.assert_array_equal(htsat.repeat_to_length(clip, htsat.WINDOW_SAMPLES),
                                golden["waveform"])
  features = jax.jit(spec.features)(clip)
  assert features.shape == (3, 1001, 64)
  assert_close(features, golden["logmel_db"][:, 0], GOLDEN_TOLERANCE["logmel_db"], "logmel_db")
  assert_outputs_match(jitted_network(spec.network)(variables, features), golden)


def test_spectrogram_repeat_reproduces_upstream_infer_mode(converted, golden):
  spec, variables = converted
  infer_spec = registry.build_spec("htsat", dict(spec.config, short_clip_repeat="spectrogram"))
  features = jax.jit(infer_spec.features)(golden["waveform"][:, :CLIP_SAMPLES])
  assert features.shape == (3, 501, 64)  # un-doubled: the network tiles it to 1002 frames
  assert_outputs_match(jitted_network(infer_spec.network)(variables, features), golden, "infer_")


@pytest.mark.parametrize("in_size,out_size", [(1001, 1024), (1002, 1024), (7, 13), (64, 64)])
def test_bicubic_matrix_equals_torch_align_corners(in_size, out_size):
  torch = pytest.importorskip("torch")
  signal = np.random.default_rng(in_size).normal(size=(2, in_size, 3))
  expected = torch.nn.functional.interpolate(
      torch.tensor(signal[:, None]), size=(out_size, 3), mode="bicubic",
      align_corners=True)[:, 0].numpy()
  actual = np.einsum("ot,btm->bom", htsat.bicubic_resize_matrix(in_size, out_size), signal)
  np.testing.assert_allclose(actual, expected, atol=1e-6)


def test_bicubic_matrix_closed_form():
  matrix = htsat.bicubic_resize_matrix(1001, 1024).astype(np.float64)
  np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-6)
  # An interpolating kernel: output samples that sit on input samples copy them (5 -> 9 puts
  # every even output on an input), and align_corners pins both ends.
  signal = np.random.default_rng(0).normal(size=5)
  np.testing.assert_allclose((htsat.bicubic_resize_matrix(5, 9) @ signal)[::2], signal, atol=1e-6)
  ramp = np.arange(1001.0)
  np.testing.assert_allclose((matrix @ ramp)[[0, -1]], [0.0, 1000.0], atol=1e-3)
  np.testing.assert_array_equal(htsat.bicubic_resize_matrix(64, 64), np.eye(64))
  # a = -0.75 (PyTorch), not -0.5 (jax.image.resize): the weight 1.5 samples away at t = 0.5.
  assert htsat.cubic_weights(np.float64(0.5))[0] == pytest.approx(-0.75 * 0.125)


def test_fold_puts_four_time_chunks_on_the_rows():
  network = htsat.HTSAT(num_classes=3, embed_dim=8)
  time_index, mel_index = np.meshgrid(np.arange(1024), np.arange(64), indexing="ij")
  image = np.asarray(network._to_image(jnp.asarray((time_index * 100 + mel_index)[None],
                                                   jnp.float32)))[0]
  chunk, mel, column = np.meshgrid(np.arange(4), np.arange(64), np.arange(256), indexing="ij")
  np.testing.assert_array_equal(image[chunk * 64 + mel, column],
                                (chunk * 256 + column) * 100 + mel)


def test_swin_window_partition_round_trip_and_tables():
  x = jnp.arange(2 * 16 * 16 * 3, dtype=jnp.float32).reshape(2, 16, 16, 3)
  windows = swin.partition_windows(x, 8)
  assert windows.shape == (2, 4, 64, 3)
  np.testing.assert_array_equal(windows[0, 1, 8 + 2], x[0, 1, 8 + 2])  # window (0, 1), token (1, 2)
  np.testing.assert_array_equal(swin.merge_windows(windows, 16, 16), x)
  index = swin.relative_position_index(8)
  assert index.shape == (64, 64) and index.min() == 0 and index.max() == 224
  assert index[0, 63] == (0 - 7 + 7) * 15 + (0 - 7 + 7) and index[63, 0] == 224
  mask = swin.shifted_window_mask(16, 16, 8, 4)
  assert mask.shape == (4, 64, 64) and set(np.unique(mask)) == {0.0, -100.0}
  assert not mask[0].any()  # the top-left window holds one region only


def test_an_empty_clip_is_a_clear_error():
  with pytest.raises(AudioError, match="empty waveform"):
    htsat.repeat_to_length(jnp.zeros((2, 0)), htsat.WINDOW_SAMPLES)


def test_jit_and_vmap_give_the_batched_outputs(converted, golden):
  spec, variables = converted
  features = jnp.asarray(golden["logmel_db"][:, 0])
  batched = jitted_network(spec.network)(variables, features)
  single = lambda clip: spec.network.apply(variables, clip[None], train=False)
  mapped = jax.jit(jax.vmap(single))(features)
  for key, value in batched.items():
    np.testing.assert_allclose(mapped[key][:, 0], value, atol=2e-6, err_msg=key)


def test_long_clip_averages_scores_of_overlapping_10s_windows(converted, golden):
  spec, variables = converted
  # 15 s: the doubled clip and then its first 5 s again -> 1501 frames, windows at 0 and 500.
  waveform = np.concatenate([golden["waveform"][:1], golden["waveform"][:1, :CLIP_SAMPLES]], 1)
  features = jax.jit(spec.features)(waveform)
  assert features.shape == (1, 1501, 64)
  np.testing.assert_array_equal(htsat.long_clip_windows(1501, 1001, 500), [0, 500])
  outputs = jitted_network(spec.network)(variables, features)
  windows = jnp.concatenate([features[:, :1001], features[:, 500:]], axis=0)
  per_window = jitted_network(spec.network)(variables, windows)
  scores = jax.nn.softmax(per_window["logits"], axis=-1).mean(axis=0, keepdims=True)
  np.testing.assert_allclose(spec.scores(outputs["logits"]), scores, atol=1e-6)
  np.testing.assert_allclose(outputs["clipwise_output"],
                             per_window["clipwise_output"].mean(0, keepdims=True), atol=1e-6)
  assert outputs["framewise_output"].shape == (1, 1501, 19)
  # Window frame j reads the stretched step nearest j * 1023 / 1000; frames 500..1000 lie in both
  # windows and get the mean, the others belong to one window.
  stretched = np.rint(np.arange(1001) * 1023 / 1000).astype(int)
  first = per_window["framewise_output"][0, stretched]
  second = per_window["framewise_output"][1, stretched]
  expected = np.concatenate([first[:500], (first[500:] + second[:501]) / 2, second[501:]])
  np.testing.assert_allclose(outputs["framewise_output"][0], expected, atol=1e-6)


def test_train_mode_stochastic_and_updates_bn0(converted, golden):
  spec, variables = converted
  features = jnp.asarray(golden["logmel_db"][:, 0])

  @jax.jit
  def train_step(key):
    return spec.network.apply(variables, features, train=True, rngs={"dropout": key},
                              mutable=["batch_stats"])

  first, state = train_step(jax.random.key(1))
  again, _ = train_step(jax.random.key(1))
  other, _ = train_step(jax.random.key(2))
  np.testing.assert_array_equal(first["logits"], again["logits"])
  assert not np.allclose(first["logits"], other["logits"])
  assert np.all(np.isfinite(first["framewise_output"]))
  old = variables["batch_stats"]["bn0"]
  # PyTorch's update: 0.9 old + 0.1 batch statistic (unbiased variance), over batch and time.
  np.testing.assert_allclose(state["batch_stats"]["bn0"]["mean"],
                             0.9 * old["mean"] + 0.1 * features.mean((0, 1)), rtol=1e-5)
  np.testing.assert_allclose(state["batch_stats"]["bn0"]["var"],
                             0.9 * old["var"] + 0.1 * features.var((0, 1), ddof=1), rtol=1e-4)


def test_train_mode_crops_long_spectrograms_to_the_window():
  spec = registry.build_spec("htsat", {"num_classes": 5, "embed_dim": 8})
  variables = random_variables(spec)
  features = jax.random.normal(jax.random.key(1), (2, 1300, 64))
  outputs, _ = jax.jit(lambda v, f: spec.network.apply(
      v, f, train=True, rngs={"dropout": jax.random.key(2)}, mutable=["batch_stats"]))(
          variables, features)
  assert outputs["framewise_output"].shape == (2, 1024, 5)
  assert np.all(np.isfinite(outputs["logits"]))


def test_drop_stripes_widths_stay_below_the_maximum():
  ones = jnp.ones((4000, 100, 3))
  dropped = htsat.drop_stripes(jax.random.key(0), ones, 1, 2, 8)
  zero_rows = np.asarray((dropped == 0).all(axis=2))
  assert ((dropped == 0) | (dropped == 1)).all()
  counts = zero_rows.sum(axis=1)
  assert counts.max() <= 2 * 7 and counts.min() == 0
  # A single stripe (second one empty) is at most 7 wide: widths are drawn from [0, 8).
  single = htsat.drop_stripes(jax.random.key(1), ones, 1, 1, 8)
  widths = np.asarray((single == 0).all(axis=2)).sum(axis=1)
  assert widths.max() == 7 and set(np.unique(widths)) == set(range(8))


def test_drop_path_zeroes_whole_examples_and_rescales():
  x = jnp.ones((4000, 5))
  out = swin.DropPath(0.25).apply({}, x, train=True, rngs={"dropout": jax.random.key(0)})
  rows = np.asarray(out)
  assert set(np.unique(rows)) == {0.0, np.float32(1 / 0.75)}
  assert (rows == rows[:, :1]).all()
  assert abs((rows[:, 0] == 0).mean() - 0.25) < 0.03
  np.testing.assert_array_equal(swin.DropPath(0.25).apply({}, x, train=False), x)


def test_token_semantic_head_off_uses_a_linear_head():
  spec = registry.build_spec("htsat", {"num_classes": 7, "embed_dim": 8, "enable_tscam": False,
                                       "loss_type": "clip_ce"})
  shapes = jax.eval_shape(spec.init, jax.random.key(0))
  assert "head" in shapes["params"] and "tscam_conv" not in shapes["params"]
  features = jax.random.normal(jax.random.key(1), (1, 1001, 64))
  outputs = jitted_network(spec.network)(random_variables(spec), features)
  # Upstream's linear-head branch always returns sigmoided clipwise scores.
  np.testing.assert_allclose(outputs["clipwise_output"], jax.nn.sigmoid(outputs["logits"]))
  assert outputs["framewise_output"].shape == (1, 1024, 7)


def test_loss_type_follows_the_class_count_unless_given():
  assert registry.build_spec("htsat", {}).output_activation == "sigmoid"  # AudioSet 527
  assert registry.build_spec("htsat", {"num_classes": 19}).output_activation == "softmax"
  assert registry.build_spec("htsat", {"num_classes": 19, "loss_type": "clip_bce"}
                             ).output_activation == "sigmoid"


@pytest.mark.parametrize("overrides,message", [
    ({"loss_type": "bce"}, "loss_type"),
    ({"short_clip_repeat": "zeros"}, "short_clip_repeat"),
    ({"num_heads": [4, 8, 16]}, "num_heads"),
    ({"embed_dim": 30}, "stage 0"),
    ({"spec_size": 224}, "stage"),
    ({"long_clip_hop_seconds": 0}, "long_clip_hop_seconds"),
    ({"clip_seconds": -5}, "clip_seconds"),
])
def test_bad_configs_are_clear_errors(overrides, message):
  with pytest.raises(ConfigError, match=message):
    registry.build_spec("htsat", overrides)


@pytest.mark.slow
def test_full_size_audioset_configuration_forward_on_one_clip():
  spec = registry.build_spec("htsat", {})  # embed 96, depths 2,2,6,2, heads 4..32, 527 classes
  variables = random_variables(spec)
  # Upstream counts 30,241,687 without the frozen frontend, including the unused head (527x527+527).
  assert sum(leaf.size for leaf in jax.tree.leaves(variables["params"])) + 527 * 528 == 30_241_687
  rng = np.random.default_rng(1)
  clip = rng.normal(0, 0.1, (1, CLIP_SAMPLES)).astype(np.float32)
  outputs = jax.jit(lambda v, w: spec.apply(v, w))(variables, clip)
  assert outputs["logits"].shape == (1, 527) and outputs["latent_output"].shape == (1, 768)
  assert outputs["framewise_output"].shape == (1, 1024, 527)
  assert np.all(np.isfinite(outputs["framewise_output"]))
  np.testing.assert_allclose(outputs["clipwise_output"], jax.nn.sigmoid(outputs["logits"]),
                             rtol=1e-6)
