"""TFNet (class ``TFNet`` in ``util_esc50/net.py`` of the TFNet authors' repository).

Four TF-blocks, each a double convolution followed by parallel frequency and time attention whose
outputs are mixed with the block's own features by learnable weights; then the CNN10 head (mean over
mel, max over time, one ``fc`` layer). Input and output are those of ``jaxnoise.models.cnn10``.

Upstream also defines per block ``bnz``, ``fc1``, ``fc2``, ``downsample`` and ``bn`` layers that its
forward pass never calls; they do not exist here (the converter skips them, saying so). Upstream
hard-codes the attention pooling sizes for a 250x40 input; the means below are the same numbers for
that input, which the frontend always produces.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnoise.models import layers
from jaxnoise.models.cnn10 import BLOCK_FEATURES, tfnet_repo_spec
from jaxnoise.models.spec import ModelSpec

DEFAULT_CONFIG = {
    "num_classes": 19,
    # Class names of the head in output order; None names them class_0 .. class_{n-1}.
    "labels": None,
}
LEAKY_SLOPE = 0.2
# Upstream's initial branch logits: equal mixing weights for (features, frequency, time).
ALPHA_INIT = (0.1, 0.1, 0.1)


def leaky_relu(x: jax.Array) -> jax.Array:
  return nn.leaky_relu(x, negative_slope=LEAKY_SLOPE)


class TFBlock(nn.Module):
  """``[batch, mel, time, in]`` -> ``[batch, mel // 2, time // 2, features]``.

  Sown intermediates (upstream orientation): ``bnx_out`` / ``bny_out`` ``[batch, time, mel]``, the
  one-channel maps of the frequency / time branch; ``freq_attention`` ``[batch, mel]``;
  ``time_attention`` ``[batch, time]``; ``softmax_alpha`` ``[3]``, the mixing weights of
  (features, frequency branch, time branch).
  """
  features: int

  @nn.compact
  def __call__(self, inputs: jax.Array, *, train: bool) -> jax.Array:
    def batch_norm(name):
      return layers.BatchNorm(name=name)

    def project(x, conv_name, norm_name):
      # One-channel summary map of x: 1x1 conv -> LeakyReLU -> BatchNorm(1).
      y = nn.Conv(1, (1, 1), use_bias=False, name=conv_name)(x)
      return batch_norm(norm_name)(leaky_relu(y), use_running_average=not train)

    # Unlike ConvBlock, the activation comes before the BatchNorm.
    x = inputs
    for index in (1, 2):
      x = layers.conv3x3(self.features, name=f"conv{index}")(x)
      x = batch_norm(f"bn{index}")(leaky_relu(x), use_running_average=not train)

    freq_map = project(x, "conv3", "bnx")                       # [batch, mel, time, 1]
    freq_attention = jax.nn.sigmoid(jnp.mean(freq_map, axis=2))  # [batch, mel, 1]
    freq_branch = batch_norm("bna")(freq_attention[:, :, None, :] * x,
                                    use_running_average=not train)

    time_map = project(x, "conv4", "bny")                       # [batch, mel, time, 1]
    time_attention = jax.nn.sigmoid(jnp.mean(time_map, axis=1))  # [batch, time, 1]
    time_branch = batch_norm("bnb")(time_attention[:, None, :, :] * x,
                                    use_running_average=not train)

    alpha = self.param("alpha", lambda _, shape: jnp.asarray(ALPHA_INIT, jnp.float32), (3,))
    mixing = jax.nn.softmax(alpha)
    out = leaky_relu(mixing[0] * x + mixing[1] * freq_branch + mixing[2] * time_branch)

    if self.is_mutable_collection("intermediates"):
      layers.sow_time_mel(self, "bnx_out", freq_map[..., 0])
      layers.sow_time_mel(self, "bny_out", time_map[..., 0])
      self.sow("intermediates", "freq_attention", freq_attention[..., 0])
      self.sow("intermediates", "time_attention", time_attention[..., 0])
      self.sow("intermediates", "softmax_alpha", mixing)
    return layers.avg_pool_2x2(out)


class TFNet(nn.Module):
  """Normalised log-mel ``[batch, time, mel]`` -> {'logits', 'embedding'}.

  'logits' ``[batch, classes]``; 'embedding' ``[batch, 512]``, the pooled input of ``fc``.

  Sown intermediates: ``tfblock{k}_out`` (block outputs after pooling, ``[batch, time, mel,
  channels]``) and, under ``tfblock{k}``, the attention tensors listed in ``TFBlock``.
  """
  num_classes: int = 19

  @nn.compact
  def __call__(self, features: jax.Array, *, train: bool = False) -> dict:
    x = layers.to_mel_time(features)
    for index, width in enumerate(BLOCK_FEATURES, start=1):
      x = TFBlock(width, name=f"tfblock{index}")(x, train=train)
      layers.sow_time_mel(self, f"tfblock{index}_out", x)
    embedding = layers.global_pool(x, mean_over_time=False)
    logits = nn.Dense(self.num_classes, name="fc")(embedding)
    return {"logits": logits, "embedding": embedding}


def build_spec(config: dict) -> ModelSpec:
  return tfnet_repo_spec("tfnet", config, TFNet(num_classes=config["num_classes"]))
