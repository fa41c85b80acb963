"""PANNs ``Cnn10`` (qiuqiangkong/audioset_tagging_cnn, ``pytorch/models.py``), the AudioSet tagger.

Waveform at 32 kHz -> torchlibrosa log-mel (64 mels, 50-14000 Hz; ``jaxnoise.audio.frontends``)
-> BatchNorm over the mel bins -> four ConvBlocks -> mean over mel, max + mean over time -> ``fc1``
+ ReLU (the embedding) -> ``fc_audioset`` -> sigmoid (527 AudioSet classes when converted from the
published checkpoint). Users start from those weights to fine-tune on ESC-50.

Clip length. Upstream inference (``pytorch/inference.py``) feeds a file of any length to the
network without padding, and the network accepts any length (its pooling is global). The study's
clips last 5 s, so the spec's ``clip_seconds`` defaults to 5: a 5-s ESC-50 clip is classified
exactly as upstream inference classifies that file. Padding it to AudioSet's 10 s would NOT
be equivalent (the silent half enters the mean over time); set ``clip_seconds`` to 10 for AudioSet
clips.

Training. Upstream applies SpecAugment (2 time stripes of up to 64 frames, 2 mel stripes of up to
8 bins) and mixup inside its forward pass; here both belong to the training loop (``config.train``),
as for every other family. Dropout is the network's, as upstream: p=0.2 after each ConvBlock, 0.5
before ``fc1``, and 0.5 on the returned embedding only (the logits use the un-dropped ``fc1``
activation).
"""
import functools

import flax.linen as nn
import jax

from jaxnoise.audio import frontends
from jaxnoise.data import labels
from jaxnoise.errors import ConfigError
from jaxnoise.models import layers
from jaxnoise.models.cnn10 import BLOCK_FEATURES, head_labels
from jaxnoise.models.spec import ModelSpec

AUDIOSET_CLASSES = labels.AUDIOSET_NUM_CLASSES
SAMPLE_RATE = 32000
MEL_BINS = 64
BAND = (50.0, 14000.0)

DEFAULT_CONFIG = {
    "num_classes": AUDIOSET_CLASSES,
    # Class names in output order; None: AudioSet names for a 527-class head, class_i otherwise.
    "labels": None,
    # Seconds of audio the loader pads or cuts clips to (see the module docstring).
    "clip_seconds": 5.0,
}


class PannsCnn10(nn.Module):
  """``[batch, time, 64]`` log-mel (dB) -> {'logits' [batch, classes], 'embedding' [batch, 512]}.

  Sown intermediates (upstream orientation): ``bn0_out`` ``[batch, time, mel]``,
  ``conv_block{k}_out`` ``[batch, time, mel, channels]``, ``pooled`` (``fc1`` input) and
  ``fc1_out_prerelu``, both ``[batch, 512]``.
  """
  num_classes: int = AUDIOSET_CLASSES

  @nn.compact
  def __call__(self, features: jax.Array, *, train: bool = False) -> dict:
    # bn0 normalises each mel bin: the mel axis is the feature axis of the frontend's output.
    x = layers.BatchNorm(name="bn0")(features, use_running_average=not train)
    self.sow("intermediates", "bn0_out", x)
    x = layers.to_mel_time(x)
    for index, width in enumerate(BLOCK_FEATURES, start=1):
      x = layers.ConvBlock(width, name=f"conv_block{index}")(x, train=train)
      layers.sow_time_mel(self, f"conv_block{index}_out", x)
      x = nn.Dropout(0.2, deterministic=not train)(x)
    pooled = layers.global_pool(x, mean_over_time=True)
    self.sow("intermediates", "pooled", pooled)
    x = nn.Dropout(0.5, deterministic=not train)(pooled)
    x = nn.Dense(512, name="fc1")(x)
    self.sow("intermediates", "fc1_out_prerelu", x)
    hidden = nn.relu(x)
    logits = nn.Dense(self.num_classes, name="fc_audioset")(hidden)
    embedding = nn.Dropout(0.5, deterministic=not train)(hidden)
    return {"logits": logits, "embedding": embedding}


def build_spec(config: dict) -> ModelSpec:
  clip_seconds = config["clip_seconds"]
  if isinstance(clip_seconds, bool) or not isinstance(clip_seconds, (int, float)) or not (
      clip_seconds > 0):
    raise ConfigError(f"panns_cnn10: clip_seconds must be a positive number, got "
                      f"{clip_seconds!r}")
  default = labels.audioset_labels() if config["num_classes"] == AUDIOSET_CLASSES else None
  return ModelSpec(
      arch="panns_cnn10",
      config=config,
      sample_rate=SAMPLE_RATE,
      clip_seconds=float(clip_seconds),
      band=BAND,
      frontend=functools.partial(frontends.torchlibrosa_logmel, sample_rate=SAMPLE_RATE,
                                 n_mels=MEL_BINS, fmin=BAND[0], fmax=BAND[1]),
      network=PannsCnn10(num_classes=config["num_classes"]),
      output_activation="sigmoid",
      labels=head_labels(config, "panns_cnn10", default))
