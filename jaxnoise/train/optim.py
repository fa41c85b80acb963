"""Optimisers and learning-rate schedules of the upstream training recipes, as optax objects.

Schedules are functions of the update count. The epoch-based ones (EfficientAT, HTS-AT) turn the
count into the epoch the batch starts in, ``count * batch_size // train_clips``, because the
training stream concatenates one shuffled pass over the training clips per epoch.
"""
import jax.numpy as jnp
import numpy as np
import optax

from jaxnoise.errors import ConfigError

OPTIMIZERS = ("adam", "amsgrad", "adamw", "sgd")
SCHEDULES = ("constant", "step_decay", "warmup_linear_down", "epoch_table")


def learning_rate_schedule(train_config, *, steps_per_epoch: float) -> optax.Schedule:
  """The learning rate as a function of the update count, from ``config.train``.

  Schedules (``config.train.schedule``):
    constant: ``learning_rate``.
    step_decay: multiplied by ``lr_decay_rate`` every ``lr_decay_every`` updates (TFNet repo:
      0.9 every 100 iterations).
    warmup_linear_down: EfficientAT's ``exp_warmup_linear_down`` per epoch: exponential ramp-up
      over ``warmup_epochs``, constant, then linear decay from ``rampdown_start_epoch`` over
      ``rampdown_epochs`` to ``final_lr_factor`` times the peak.
    epoch_table: factor ``epoch_factors[i]`` from epoch ``epoch_boundaries[i]`` on (HTS-AT's
      warm-up and step table).
  ``warmup_steps > 0`` adds a linear warm-up over the first updates to any of them.
  """
  base = float(train_config.learning_rate)
  name = train_config.schedule
  if base <= 0:
    raise ConfigError(f"config.train.learning_rate must be positive, got {base}")
  if steps_per_epoch <= 0:
    raise ConfigError(f"steps per epoch must be positive, got {steps_per_epoch}")

  def epoch_of(count):
    return jnp.floor(count / steps_per_epoch)

  if name == "constant":
    schedule = optax.constant_schedule(base)
  elif name == "step_decay":
    every = int(train_config.lr_decay_every)
    if every <= 0:
      raise ConfigError(f"config.train.lr_decay_every must be positive, got {every}")
    schedule = optax.exponential_decay(base, transition_steps=every,
                                       decay_rate=float(train_config.lr_decay_rate),
                                       staircase=True)
  elif name == "warmup_linear_down":
    warmup = float(train_config.warmup_epochs)
    start = float(train_config.rampdown_start_epoch)
    length = float(train_config.rampdown_epochs)
    last = float(train_config.final_lr_factor)

    def schedule(count):
      epoch = epoch_of(count)
      if warmup > 0:
        # Upstream clips the epoch to >= 0.5 so the first epoch's rate is small but not ~0.
        phase = 1.0 - jnp.clip(epoch, 0.5, warmup) / warmup
        rampup = jnp.where(epoch < warmup, jnp.exp(-5.0 * phase * phase), 1.0)
      else:
        rampup = 1.0
      into = epoch - start
      rampdown = jnp.where(into <= 0, 1.0,
                           jnp.where(into < length,
                                     last + (1.0 - last) * (length - into) / max(length, 1e-9),
                                     last))
      return base * rampup * rampdown
  elif name == "epoch_table":
    boundaries = np.asarray(train_config.epoch_boundaries, np.float32)
    factors = np.asarray(train_config.epoch_factors, np.float32)
    if (len(boundaries) != len(factors) or not len(boundaries) or boundaries[0] != 0
        or np.any(np.diff(boundaries) <= 0)):
      raise ConfigError("config.train.epoch_boundaries must start at 0, increase, and have one "
                        f"entry per config.train.epoch_factors; got {tuple(boundaries)} and "
                        f"{tuple(factors)}")

    def schedule(count):
      index = jnp.searchsorted(jnp.asarray(boundaries), epoch_of(count), side="right") - 1
      return base * jnp.asarray(factors)[index]
  else:
    raise ConfigError(f"config.train.schedule={name!r}; expected one of {SCHEDULES}")

  warmup_steps = int(train_config.warmup_steps)
  if warmup_steps > 0:
    inner = schedule

    def schedule(count):
      return inner(count) * jnp.minimum(1.0, (count + 1) / warmup_steps)
  return schedule


def optimizer(train_config, schedule: optax.Schedule) -> optax.GradientTransformation:
  """``config.train.optimizer`` with the schedule; betas and epsilon as PyTorch's defaults.

  adam / amsgrad: ``weight_decay`` is added to the gradient (PyTorch's coupled L2);
  adamw: decoupled weight decay on every parameter, as ``torch.optim.AdamW`` in HTS-AT.
  """
  name = train_config.optimizer
  decay = float(train_config.weight_decay)
  if name == "adam":
    core = optax.adam(schedule, b1=0.9, b2=0.999, eps=1e-8)
  elif name == "amsgrad":
    core = optax.amsgrad(schedule, b1=0.9, b2=0.999, eps=1e-8)
  elif name == "adamw":
    return optax.adamw(schedule, b1=0.9, b2=0.999, eps=1e-8, weight_decay=decay)
  elif name == "sgd":
    core = optax.sgd(schedule, momentum=0.9)
  else:
    raise ConfigError(f"config.train.optimizer={name!r}; expected one of {OPTIMIZERS}")
  if decay:
    return optax.chain(optax.add_decayed_weights(decay), core)
  return core
