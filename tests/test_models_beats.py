"""BEATs in Flax against upstream PyTorch outputs (../shared/golden/beats) and closed forms.

The golden model (the released structure at reduced width: 3 layers of 96, 19 classes) is converted
from its checkpoint once per module. Tolerances are the errors measured here (float32, CPU) with a
small margin; all lie below the golden README's suggestions for a float32 port. Run with ``-s`` to
see every measured error.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnoise.audio import frontends
from jaxnoise.errors import AudioError, ConfigError
from jaxnoise.models import beats, registry

# From the stored fbank (or the stored stage input): float32 reduction-order noise only
# (measured <= 4.8e-6 on every array).
STAGE_TOLERANCE = 1e-5
# From the waveform through jaxnoise's fbank: the fbank's float32 FFT noise in a few single-bin low
# mel channels of the loudest clip (9.2e-4 measured; README suggests 3e-3) carries into the tokens.
WAVEFORM_TOLERANCE = {"fbank": 1.2e-3, "patch_embed_out": 5e-4, "encoder_input": 3e-4,
                      "layer_outputs": 1.3e-3, "token_logits": 7e-4, "pooled_logits": 1e-5,
                      "lprobs": 2e-6}


@pytest.fixture(scope="module")
def golden(golden_dir):
  return dict(np.load(golden_dir / "beats" / "beats_tiny_esc19.io.npz"))


@pytest.fixture(scope="module")
def converted(golden_dir):
  pytest.importorskip("torch", reason="reading the golden BEATs checkpoint needs torch")
  from jaxnoise import convert  # pylint: disable=import-outside-toplevel
  return convert.convert_checkpoint("beats", golden_dir / "beats" / "beats_tiny_esc19.pt")


@functools.lru_cache(maxsize=None)
def jitted_network(network):
  """``(variables, fbank, padding_mask) -> (outputs, intermediates)`` in eval mode, compiled."""
  def run(variables, features, padding_mask):
    outputs, state = network.apply(variables, features, train=False, padding_mask=padding_mask,
                                   mutable=["intermediates"])
    return outputs, state["intermediates"]
  return jax.jit(run)


def assert_close(actual, expected, tolerance, name):
  error = float(np.max(np.abs(np.asarray(actual, np.float64) - expected)))
  print(f"{name}: max abs error {error:.2g}")
  assert error <= tolerance, f"{name}: max abs error {error:.3g} > {tolerance}"


def stage_outputs(outputs, found):
  """Golden array name -> the port's value (torch layouts where they differ)."""
  encoder = found["encoder"]
  return {
      "patch_conv_out": np.transpose(found["patch_conv_out"][0], (0, 3, 1, 2)),
      "patch_embed_out": found["patch_embed_out"][0],
      "encoder_input": found["encoder_input"][0],
      "pos_conv_out": encoder["pos_conv_out"][0],
      "encoder_ln_out": encoder["encoder_ln_out"][0],
      "layer0_grep_linear_out": encoder["layers_0"]["self_attn"]["grep_linear_out"][0],
      "layer0_attn_out": encoder["layers_0"]["attn_out"][0],
      "layer0_after_attn_ln": encoder["layers_0"]["after_attn_ln"][0],
      "layer_outputs": np.stack(encoder["layer_outputs"]),
      "encoder_out": outputs["encoder_out"],
      "token_logits": outputs["token_logits"],
      "pooled_logits": outputs["logits"],
      "lprobs": jax.nn.sigmoid(outputs["logits"]),
  }


def test_golden_every_stage_from_the_stored_fbank(converted, golden):
  spec, variables = converted
  outputs, found = jitted_network(spec.network)(variables, golden["fbank"], None)
  for name, value in stage_outputs(outputs, found).items():
    assert_close(value, golden[name], STAGE_TOLERANCE, name)
  np.testing.assert_array_equal(found["encoder"]["rel_pos_bias"][0], golden["rel_pos_bias"])


def test_relative_position_buckets_closed_form():
  buckets = beats.relative_position_buckets(248, 320, 800)
  assert buckets[0, 0] == 0 and buckets[0, 1] == 161 and buckets[1, 0] == 1
  # Exact below 80 tokens, log-spaced beyond, saturating from 778 at 159 / 319; 160 never used.
  assert buckets[0, 79] == 160 + 79 and buckets[79, 0] == 79
  far = beats.relative_position_buckets(800, 320, 800)
  assert far[0, 778] == 319 and far[778, 0] == 159 and far[0, 777] == 318
  assert 160 not in far


def test_golden_buckets(golden):
  np.testing.assert_array_equal(beats.relative_position_buckets(248, 320, 800),
                                golden["rel_pos_bucket"])


def test_golden_from_the_waveform_through_jaxnoises_fbank(converted, golden):
  spec, variables = converted
  fbank = jax.jit(spec.features)(golden["waveform"])
  assert fbank.shape == (3, 498, 128)
  assert_close(fbank, golden["fbank"], WAVEFORM_TOLERANCE["fbank"], "fbank (waveform)")
  print(f"fbank (waveform): 99.9 % of bins within "
        f"{np.quantile(np.abs(np.asarray(fbank) - golden['fbank']), 0.999):.2g}")
  outputs, found = jitted_network(spec.network)(variables, fbank, None)
  values = stage_outputs(outputs, found)
  for name, tolerance in WAVEFORM_TOLERANCE.items():
    if name != "fbank":
      assert_close(values[name], golden[name], tolerance, f"{name} (waveform)")
  # Digital silence sits at the floor ln(eps), normalised; channel 3's filter is all zero.
  silent = (np.log(np.finfo(np.float32).eps) - frontends.BEATS_FBANK_MEAN) / (
      2 * frontends.BEATS_FBANK_STD)
  np.testing.assert_allclose(fbank[:, :, 3], silent, rtol=1e-6)


def test_golden_padding_mask_case(converted, golden):
  spec, variables = converted
  frame_mask = beats.frame_padding_mask(golden["pad_padding_mask_input"])
  np.testing.assert_array_equal(frame_mask, golden["pad_frame_padding_mask"])
  outputs, found = jitted_network(spec.network)(variables, golden["pad_fbank"], frame_mask)
  np.testing.assert_array_equal(found["token_padding_mask"][0], golden["pad_token_padding_mask"])
  assert_close(found["encoder_input"][0], golden["pad_encoder_input"], STAGE_TOLERANCE,
               "pad_encoder_input")
  assert_close(np.stack(found["encoder"]["layer_outputs"]), golden["pad_layer_outputs"],
               STAGE_TOLERANCE, "pad_layer_outputs")
  assert_close(outputs["encoder_out"], golden["pad_encoder_out"], STAGE_TOLERANCE,
               "pad_encoder_out")
  assert_close(outputs["token_logits"], golden["pad_token_logits"], STAGE_TOLERANCE,
               "pad_token_logits")
  assert_close(jax.nn.sigmoid(outputs["logits"]), golden["pad_lprobs"], 1e-6, "pad_lprobs")
  # An all-False mask changes nothing but float32 rounding (another compiled program).
  plain, _ = jitted_network(spec.network)(variables, golden["fbank"], None)
  masked, _ = jitted_network(spec.network)(variables, golden["fbank"],
                                           np.zeros((3, 498), bool))
  for name in ("encoder_out", "logits"):
    assert_close(masked[name], np.asarray(plain[name]), STAGE_TOLERANCE, f"{name} (no padding)")


def test_lengths_mask_batches_files_of_different_lengths(converted, golden):
  spec, variables = converted
  lengths = [80000, 48000]
  mask = beats.lengths_padding_mask(lengths, 80000)
  np.testing.assert_array_equal(mask, golden["pad_padding_mask_input"])
  waveform = np.where(mask, 0.0, golden["pad_waveform"]).astype(np.float32)
  outputs = jax.jit(lambda v, x: beats.apply_padded(spec, v, x, lengths))(variables, waveform)
  assert_close(jax.nn.sigmoid(outputs["logits"]), golden["pad_lprobs"],
               WAVEFORM_TOLERANCE["lprobs"], "pad_lprobs (waveform)")


def test_reduce_padding_mask_drops_the_remainder_and_needs_all():
  mask = jnp.asarray([[False, True, True, True, True, False, True]])
  # 7 entries -> 3 runs of 2 (the 7th dropped): (F,T) (T,T) (T,F)
  np.testing.assert_array_equal(beats.reduce_padding_mask(mask, 3), [[False, True, False]])
  with pytest.raises(AudioError, match="cannot cover"):
    beats.reduce_padding_mask(mask, 8)


def test_scale_gradient_is_identity_forward_and_scales_backward():
  x = jnp.arange(3.0)
  np.testing.assert_array_equal(beats.scale_gradient(x, 0.6), x)
  gradient = jax.grad(lambda v: jnp.sum(beats.scale_gradient(v, 0.6) ** 2))(x)
  np.testing.assert_allclose(gradient, 0.6 * 2 * x)


def test_training_mode_layer_drop_and_determinism(converted, golden):
  spec, variables = converted
  features = jnp.asarray(golden["fbank"][:2])

  def apply(network, key):
    return jax.jit(lambda v: network.apply(v, features, train=True,
                                           rngs={"dropout": key}))(variables)["encoder_out"]

  network = spec.network
  with_layerdrop = lambda p: network.clone(encoder=dataclasses.replace(network.encoder,
                                                                        layerdrop=p))
  np.testing.assert_array_equal(apply(network, jax.random.key(1)),
                                apply(network, jax.random.key(1)))
  # Every layer dropped: the encoder output is the LayerNorm after the positional convolution.
  all_dropped = apply(with_layerdrop(1.0), jax.random.key(1))
  _, found = jitted_network(network)(variables, features, None)
  np.testing.assert_allclose(all_dropped, found["encoder"]["encoder_ln_out"][0], atol=1e-6)
  # No layer drop and no dropout: training mode computes the eval forward pass.
  kept = apply(with_layerdrop(0.0), jax.random.key(1))
  np.testing.assert_allclose(kept, golden["encoder_out"][:2], atol=STAGE_TOLERANCE)


def test_spec_band_rate_and_head_activation():
  spec = registry.build_spec("beats", {})
  assert (spec.sample_rate, spec.clip_seconds, spec.band) == (16000, 5.0, (20.0, 8000.0))
  assert spec.output_activation == "sigmoid" and spec.labels[0] == "Speech"
  assert registry.build_spec("beats", {"num_classes": 19}).output_activation == "softmax"
  assert registry.build_spec("beats", {"num_classes": 19, "output_activation": "sigmoid"}
                             ).output_activation == "sigmoid"


def test_full_size_parameter_count_from_shapes():
  spec = registry.build_spec("beats", {})
  shapes = jax.eval_shape(spec.init, jax.random.key(0))
  count = sum(leaf.size for leaf in jax.tree.leaves(shapes["params"]))
  # Upstream's 90,717,055 with the weight norm's 128 gains folded into the kernel.
  assert count == 90_717_055 - 128


@pytest.mark.parametrize("overrides,message", [
    ({"encoder_attention_heads": 5}, "multiple of encoder_attention_heads"),
    ({"conv_pos_groups": 7}, "multiple of conv_pos_groups"),
    ({"num_buckets": 322}, "num_buckets"),
    ({"output_activation": "relu"}, "output_activation"),
    ({"embed_dim": 0}, "embed_dim"),
    ({"clip_seconds": 0}, "clip_seconds"),
])
def test_bad_configs_are_clear_errors(overrides, message):
  with pytest.raises(ConfigError, match=message):
    registry.build_spec("beats", overrides)


def test_too_short_inputs_are_clear_errors(converted):
  spec, variables = converted
  with pytest.raises(ValueError, match="at least 400 samples"):
    spec.features(jnp.zeros((1, 399)))
  with pytest.raises(AudioError, match="2800 samples"):
    spec.apply(variables, jnp.zeros((1, 2799)))
  assert spec.apply(variables, jnp.zeros((1, 2800)))["token_logits"].shape == (1, 8, 19)
