"""The one description of a model that every stage (predict, train, sweep, report) reads.

A ``ModelSpec`` bundles the network with everything around it: the rate and length of the audio it
expects, the frequency band in which the study measures SNR for it, its log-mel frontend, how its
logits become scores, and the names of its classes. Stages never branch on the model's name.
"""
import dataclasses
from typing import Any, Callable, Mapping, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnoise.models import precision as precision_lib

OUTPUT_ACTIVATIONS = ("softmax", "sigmoid")


@dataclasses.dataclass(frozen=True, eq=False)
class ModelSpec:
  """A model family instance, fully configured.

  Attributes:
    arch: registry name of the family ('cnn10', 'tfnet', 'panns_cnn10', 'mn', 'htsat', 'beats').
    config: JSON-serialisable constructor arguments of the network (class count, widths, ...).
    sample_rate: rate in Hz of the waveform the frontend takes.
    clip_seconds: clip length the model was trained on; shorter clips are padded by the loader.
    band: (fmin, fmax) in Hz of the model's sensitivity band, in which SNR is measured.
    frontend: pure, jit-able ``waveform [batch, samples] -> features [batch, ...]``.
    network: Flax module ``features -> dict`` with at least 'logits' [batch, classes];
      called as ``network.apply(variables, features, train=...)``.
    output_activation: 'softmax' (single-label heads) or 'sigmoid' (AudioSet multi-label heads).
    labels: class names of the head, in output order.
    pad_short_clips: whether a file shorter than ``clip_seconds`` is zero-padded before the
      frontend (the ESC-50 convention); False where the frontend itself extends short clips the
      way upstream does (HTS-AT repeats them).
    precision: 'highest' | 'default' | 'bfloat16' (``jaxnoise.models.precision``): how ``apply``
      and ``network_apply`` compute; set with ``dataclasses.replace`` by the stage that runs it.
  """
  arch: str
  config: Mapping[str, Any]
  sample_rate: int
  clip_seconds: float
  band: tuple
  frontend: Callable[[jax.Array], jax.Array]
  network: nn.Module
  output_activation: str
  labels: Sequence[str]
  pad_short_clips: bool = True
  precision: str = "highest"

  def __post_init__(self):
    precision_lib.check(self.precision)
    if self.output_activation not in OUTPUT_ACTIVATIONS:
      raise ValueError(f"output_activation must be one of {OUTPUT_ACTIVATIONS}, "
                       f"got {self.output_activation!r}")
    fmin, fmax = self.band
    if not 0 <= fmin < fmax <= self.sample_rate / 2:
      raise ValueError(f"band {self.band} must satisfy 0 <= fmin < fmax <= Nyquist "
                       f"({self.sample_rate / 2} Hz)")

  @property
  def clip_samples(self) -> int:
    return int(round(self.sample_rate * self.clip_seconds))

  @property
  def num_classes(self) -> int:
    return len(self.labels)

  def fit_file(self, waveform):
    """A whole file's ``[samples]`` made ready for ``apply``: short files padded to the clip length
    where ``pad_short_clips``; long files kept whole (every frontend and network here takes any
    length: EfficientAT and PANNs pool over time, HTS-AT averages overlapping 10-s windows, the
    TFNet-repo frontend cuts to 5 s itself)."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    if self.pad_short_clips and waveform.shape[-1] < self.clip_samples:
      return np.pad(waveform, (0, self.clip_samples - waveform.shape[-1]))
    return waveform

  def features(self, waveform: jax.Array) -> jax.Array:
    """``[batch, samples]`` waveform at ``sample_rate`` -> network input features (float32)."""
    with jax.default_matmul_precision(precision_lib.MATMUL_PRECISION[self.precision]):
      return self.frontend(waveform)

  def network_apply(self, variables, features: jax.Array, *, train: bool = False,
                    rngs: Optional[dict] = None, mutable=False):
    """The network on ``features`` at ``self.precision``: output dict with float32 'logits' (and,
    if ``mutable``, the updated collections in the dtypes of ``variables``)."""
    dtype = precision_lib.compute_dtype(self.precision)
    with jax.default_matmul_precision(precision_lib.MATMUL_PRECISION[self.precision]):
      result = self.network.apply(precision_lib.cast_floats(variables, dtype),
                                  features.astype(dtype), train=train, rngs=rngs, mutable=mutable)
    outputs, updates = result if mutable else (result, None)
    outputs = dict(outputs, logits=outputs["logits"].astype(jnp.float32))
    if not mutable:
      return outputs
    return outputs, precision_lib.like(dict(updates), {name: variables[name] for name in updates})

  def apply(self, variables, waveform: jax.Array, *, train: bool = False,
            rngs: Optional[dict] = None, mutable=False):
    """Frontend then network: ``waveform [batch, samples]`` -> output dict (and updates if mutable)."""
    return self.network_apply(variables, self.features(waveform), train=train, rngs=rngs,
                              mutable=mutable)

  def scores(self, logits: jax.Array) -> jax.Array:
    """Logits ``[batch, classes]`` -> probabilities as the head was trained (softmax or sigmoid)."""
    if self.output_activation == "softmax":
      return jax.nn.softmax(logits, axis=-1)
    return jax.nn.sigmoid(logits)

  def init(self, rng: jax.Array, batch_size: int = 1):
    """Random variables for this spec, from a dummy clip of ``clip_samples``."""
    dummy = jnp.zeros((batch_size, self.clip_samples), jnp.float32)
    return self.network.init(rng, self.frontend(dummy), train=False)
