"""The compiled pieces of training: the update step, evaluation, and where their data lives.

Data parallelism: batches are split over a 'data' mesh axis of all devices (of all hosts), while the
variables and optimizer state are replicated; XLA inserts the gradient all-reduce. BatchNorm
statistics are those of the global batch, so a run on several devices equals a one-device run up to
the order of floating-point sums.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxnoise.errors import ConfigError
from jaxnoise.runtime import distributed
from jaxnoise.train import augment, noise_augment

DATA_AXIS = "data"
AUGMENTATIONS = ("none", "mask", "mixup", "mask+mixup")


@dataclasses.dataclass
class Placement:
  """The 'data' mesh: batches are split along it, variables replicated."""
  mesh: Mesh

  @property
  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, PartitionSpec())

  @property
  def size(self) -> int:
    return self.mesh.devices.size

  def shard_batch(self, array: np.ndarray) -> jax.Array:
    """A global ``[batch, ...]`` host array (every process holds all of it) split over the mesh."""
    return distributed.put(array, self.mesh, PartitionSpec(DATA_AXIS))

  def replicate(self, tree):
    return jax.device_put(tree, self.replicated)


def make_placement(devices=None) -> Placement:
  """All devices of all hosts by default; ``devices`` picks some (tests use one of several)."""
  devices = list(devices) if devices is not None else jax.devices()
  return Placement(Mesh(np.asarray(devices), (DATA_AXIS,)))


def augmentation_flags(train_config, step: int) -> tuple[bool, bool]:
  """(mask, mixup) for ``step``: ``config.train.augment_cycle`` is applied round robin.

  The TFNet repository alternates mixup, plain and SpecAugment batches: ('mixup', 'none', 'mask').
  """
  cycle = tuple(train_config.augment_cycle) or ("none",)
  kind = cycle[step % len(cycle)]
  if kind not in AUGMENTATIONS:
    raise ConfigError(f"config.train.augment_cycle has {kind!r}; expected items of {AUGMENTATIONS}")
  return "mask" in kind, "mixup" in kind


def make_train_step(spec, tx, schedule, train_config, placement: Placement, noise_augmenter=None):
  """The jitted update ``(state, waveforms, labels, key, use_mask, use_mixup, noise_bank=None,
  clip_powers=None) -> (state, metrics)``.

  ``state`` is ``{'step', 'params', 'model_state' (e.g. batch_stats), 'opt_state'}``. The
  augmentation flags are traced, so one compiled step serves every item of the cycle: a step
  without masking selects the unmasked features, one without mixup uses weight 1 (exactly x).
  With a ``noise_augmenter`` (``jaxnoise.train.noise_augment``), noise from ``noise_bank`` (its
  device arrays) is mixed into the waveforms ``[batch, samples]`` before the frontend, from
  ``fold_in(key, NOISE_STREAM)``; the other draws keep their keys. ``clip_powers [batch]``: the
  clips' band powers, computed once per run (``noise_augment.clip_powers``).
  """
  alpha = float(train_config.mixup_alpha)
  mix_targets = bool(train_config.mixup_targets)
  # Each device computes the features of its own clips. Left to the partitioner, the frontends'
  # loop over groups of clips (audio.frontends.map_over_clips) gathered every device's waveforms
  # onto every device first (all 56 MB of CNN10's batch of 64 clips, on two CPU devices).
  frontend = jax.shard_map(spec.features, mesh=placement.mesh, in_specs=PartitionSpec(DATA_AXIS),
                           out_specs=PartitionSpec(DATA_AXIS), check_vma=False)
  mask_settings = dict(time_masks=int(train_config.time_masks),
                       time_mask_width=int(train_config.time_mask_width),
                       freq_masks=int(train_config.freq_masks),
                       freq_mask_width=int(train_config.freq_mask_width))

  def step_fn(state, waveforms, labels, key, use_mask, use_mixup, noise_bank=None,
              clip_powers=None):
    # Layers that loop over clips ask how the batch is split (models.layers.clip_groups).
    with jax.sharding.use_abstract_mesh(placement.mesh.abstract_mesh):
      return step_body(state, waveforms, labels, key, use_mask, use_mixup, noise_bank,
                       clip_powers)

  def step_body(state, waveforms, labels, key, use_mask, use_mixup, noise_bank, clip_powers):
    mask_key, mixup_key, dropout_key = jax.random.split(key, 3)
    if noise_augmenter is not None:
      waveforms, _ = noise_augmenter(jax.random.fold_in(key, noise_augment.NOISE_STREAM),
                                     waveforms, noise_bank, clip_powers)
    features = frontend(waveforms)
    features = jnp.where(use_mask,
                         augment.mask_time_frequency(mask_key, features, **mask_settings), features)
    partner, lam = augment.mixup_partners(mixup_key, features.shape[0], alpha)
    lam = jnp.where(use_mixup, lam, 1.0)
    features = augment.mix(features, partner, lam)
    model_state = state["model_state"]

    def loss_fn(params):
      variables = {"params": params, **model_state}
      if model_state:
        outputs, new_model_state = spec.network_apply(
            variables, features, train=True, rngs={"dropout": dropout_key},
            mutable=list(model_state))
      else:
        outputs = spec.network_apply(variables, features, train=True,
                                     rngs={"dropout": dropout_key})
        new_model_state = {}
      logits = outputs["logits"]
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
      if mix_targets:
        partner_loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels[partner])
        loss = lam * loss + (1.0 - lam) * partner_loss
      return jnp.mean(loss), (dict(new_model_state), logits)

    (loss, (new_model_state, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state["params"])
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    new_state = {"step": state["step"] + 1,
                 "params": optax.apply_updates(state["params"], updates),
                 "model_state": new_model_state,
                 "opt_state": opt_state}
    metrics = {"loss": loss,
               "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels),
               "learning_rate": jnp.asarray(schedule(state["step"]), jnp.float32)}
    return new_state, metrics

  replicated = placement.replicated
  return jax.jit(step_fn, out_shardings=(replicated, replicated), donate_argnums=(0,))


def make_eval_step(spec):
  """Jitted ``(variables, waveforms [batch, samples]) -> logits [batch, classes]`` in eval mode."""
  return jax.jit(lambda variables, waveforms: spec.apply(variables, waveforms,
                                                         train=False)["logits"])


def evaluate(eval_step, variables, waveforms: np.ndarray, labels: np.ndarray, batch_size: int,
             placement: Placement) -> dict:
  """Loss, accuracy and predictions over ``waveforms``, in fixed-size batches (last one padded)."""
  logits = []
  for start in range(0, len(labels), batch_size):
    chunk = waveforms[start:start + batch_size]
    padded = np.zeros((batch_size,) + chunk.shape[1:], np.float32)
    padded[:len(chunk)] = chunk
    batch_logits = eval_step(variables, placement.shard_batch(padded))
    logits.append(distributed.fetch(batch_logits)[:len(chunk)])
  logits = np.concatenate(logits).astype(np.float64)
  shifted = logits - logits.max(axis=1, keepdims=True)
  log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
  predictions = logits.argmax(axis=1)
  return {"loss": float(-log_probs[np.arange(len(labels)), labels].mean()),
          "accuracy": float(np.mean(predictions == labels)),
          "predictions": predictions}
