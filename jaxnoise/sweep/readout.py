"""From a model's outputs to a decision among the tested ESC-50 classes.

A head trained on ESC-50 classes names them in ``spec.labels`` (category names, e.g. 'crying_baby'):
each tested class reads its own output. An AudioSet head (527 outputs) classifies zero-shot: each
tested class scores the max of its mapped AudioSet outputs (``jaxnoise.data.zero_shot``). Both are one
gather and a masked max over a small index table, so the sweep treats every model alike.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxnoise.data import labels as label_sets
from jaxnoise.data import zero_shot
from jaxnoise.errors import ConfigError


@dataclasses.dataclass(frozen=True, eq=False)
class Readout:
  """Which model outputs score each tested class.

  Attributes:
    kind: 'head' (the model's own ESC classes) or 'zero-shot' (AudioSet outputs mapped to ESC).
    target_ids: ESC-50 targets of the tested classes, in decision order.
    names: their category names.
    indices: ``[classes, width]`` output indices per class (padded).
    valid: ``[classes, width]`` which entries of ``indices`` are real.
  """
  kind: str
  target_ids: tuple
  names: tuple
  indices: np.ndarray
  valid: np.ndarray

  def class_scores(self, scores: jax.Array) -> jax.Array:
    """``[..., outputs]`` scores -> ``[..., classes]``: the best mapped output of each class."""
    gathered = jnp.take(scores, jnp.asarray(self.indices), axis=-1)
    return jnp.max(jnp.where(jnp.asarray(self.valid), gathered, -jnp.inf), axis=-1)

  def describe(self) -> dict:
    return {"kind": self.kind, "target_ids": list(self.target_ids), "names": list(self.names),
            "outputs": [[int(i) for i, ok in zip(row, valid) if ok]
                        for row, valid in zip(self.indices, self.valid)]}


def make_readout(model_labels, label_names, target_ids, label_map=None) -> Readout:
  """The readout of a head whose outputs are named ``model_labels`` for the tested classes.

  Args:
    model_labels: ``spec.labels``.
    label_names: names of the tested classes (``sources.select_classes``).
    target_ids: their positions in the data's class list (ESC-50: the targets).
    label_map: ``{label: AudioSet names}`` for an AudioSet head (``config.model.label_map``);
      None: the built-in ESC-50 map.

  Raises:
    ConfigError: the head neither names every tested class nor is an AudioSet head.
  """
  model_labels = tuple(model_labels)
  position = {name: index for index, name in enumerate(model_labels)}
  if all(name in position for name in label_names):
    indices = np.asarray([[position[name]] for name in label_names], np.int32)
    return Readout("head", tuple(target_ids), tuple(label_names), indices,
                   np.ones_like(indices, bool))
  if model_labels == label_sets.audioset_labels():
    indices, valid = zero_shot.index_table(label_names, label_map)
    return Readout("zero-shot", tuple(target_ids), tuple(label_names), indices, valid)
  missing = [name for name in label_names if name not in position]
  raise ConfigError(
      f"the model's {len(model_labels)} outputs ({', '.join(model_labels[:4])}, ...) name neither "
      f"the tested classes (missing {missing[:4]}) nor AudioSet's 527 classes; sweep a model trained "
      "on these classes (config.data.classes) or an AudioSet-pretrained one (zero-shot)")
