"""CNN10 as the TFNet authors' repository builds it (class ``Cnn`` in ``util_esc50/net.py``).

The study trained this network from scratch on 19 ESC-50 classes. It differs from PANNs' Cnn10
(``jaxnoise.models.panns_cnn10``): its input is the per-clip min-max normalised 44.1 kHz log-mel
(``jaxnoise.audio.frontends.tfnet_input``, ``[batch, 250, 40]``), it pools by the max over time
only, and its head is the single ``fc`` layer: the ``fc2`` layer and the dropout that upstream
defines are never called in its forward pass, so they do not exist here.

Upstream returns ``log_softmax(fc(x))``; this module returns the logits and the spec declares the
softmax (``output_activation='softmax'``), which the loss and the scores apply.
"""
from typing import Sequence

import flax.linen as nn
import jax

from jaxnoise.audio import frontends
from jaxnoise.errors import ConfigError
from jaxnoise.models import layers
from jaxnoise.models.spec import ModelSpec

DEFAULT_CONFIG = {
    "num_classes": 19,
    # Class names of the head in output order; None names them class_0 .. class_{n-1}.
    "labels": None,
}
BLOCK_FEATURES = (64, 128, 256, 512)


class Cnn10(nn.Module):
  """Normalised log-mel ``[batch, time, mel]`` -> {'logits', 'embedding'}.

  'logits' ``[batch, classes]``; 'embedding' ``[batch, 512]``, the pooled input of ``fc``.

  Sown intermediates ('intermediates' collection, upstream orientation): ``conv_block{k}_out``,
  the output of block k after its pooling, ``[batch, time, mel, channels]``.
  """
  num_classes: int = 19

  @nn.compact
  def __call__(self, features: jax.Array, *, train: bool = False) -> dict:
    x = layers.to_mel_time(features)
    for index, width in enumerate(BLOCK_FEATURES, start=1):
      x = layers.ConvBlock(width, name=f"conv_block{index}")(x, train=train)
      layers.sow_time_mel(self, f"conv_block{index}_out", x)
    embedding = layers.global_pool(x, mean_over_time=False)
    logits = nn.Dense(self.num_classes, name="fc")(embedding)
    return {"logits": logits, "embedding": embedding}


def head_labels(config: dict, arch: str, default: Sequence[str] | None = None) -> tuple:
  """The class names of the head: ``config['labels']`` if given, else ``default``, else generic.

  Raises ConfigError when the given names do not fit ``config['num_classes']``.
  """
  num_classes = config["num_classes"]
  if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
    raise ConfigError(f"{arch}: num_classes must be a positive integer, got {num_classes!r}")
  labels = config.get("labels")
  if labels is None:
    labels = default if default is not None else [f"class_{i}" for i in range(num_classes)]
  elif isinstance(labels, str) or not all(isinstance(label, str) for label in labels):
    raise ConfigError(f"{arch}: labels must be a list of class names, got {labels!r}")
  if len(labels) != num_classes:
    raise ConfigError(f"{arch}: {len(labels)} labels given for num_classes={num_classes}")
  return tuple(labels)


def tfnet_repo_spec(arch: str, config: dict, network: nn.Module) -> ModelSpec:
  """The spec shared by the TFNet repository's two models (CNN10 and TFNet)."""
  return ModelSpec(
      arch=arch,
      config=config,
      sample_rate=frontends.TFNET_SAMPLE_RATE,
      clip_seconds=5.0,
      band=frontends.TFNET_BAND,
      frontend=frontends.tfnet_input,
      network=network,
      output_activation="softmax",
      labels=head_labels(config, arch))


def build_spec(config: dict) -> ModelSpec:
  return tfnet_repo_spec("cnn10", config, Cnn10(num_classes=config["num_classes"]))
