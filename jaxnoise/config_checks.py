"""Checks of an experiment config (``configs/base.py``) before any stage starts.

``check_config(config, modes)`` is what launch.py runs first: every key the chosen modes read is
checked, and the data, classes, noises and checkpoint they name are looked up (no audio is decoded,
no model built), so a mistake in the sweep or report settings is reported at once rather than
after hours of training. The stages run the checks of their own section too
(``check_train_config`` in ``jaxnoise.train.loop.train``, ``check_sweep_config`` in
``jaxnoise.sweep.run.run``, ``check_report_config`` in ``jaxnoise.report.page.write_report``), so
calling them directly is as safe.

Every check raises ConfigError naming the key, its value and what was expected.
"""
import math
import numbers
import pathlib

from jaxnoise.data import esc50
from jaxnoise.errors import ConfigError
from jaxnoise.models import registry
from jaxnoise.sweep import store
from jaxnoise.train import optim, steps

# jax.random.key and numpy's generators both take any non-negative integer below 2**63.
SEED_LIMIT = 2**63


def integer(value, key: str, minimum: int) -> int:
  """``value`` as an int; ConfigError unless it is an integer >= ``minimum``."""
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
    raise ConfigError(f"{key} must be an integer >= {minimum}, got {value!r}")
  return int(value)


def real(value, key: str, minimum: float, *, inclusive: bool = True) -> float:
  """``value`` as a float; ConfigError unless it is a finite number >= (or >) ``minimum``."""
  fits = (not isinstance(value, bool) and isinstance(value, numbers.Real)
          and math.isfinite(value) and (value >= minimum if inclusive else value > minimum))
  if not fits:
    bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
    raise ConfigError(f"{key} must be a finite number {bound}, got {value!r}")
  return float(value)


def check_seed(config) -> int:
  seed = integer(config.seed, "config.seed", 0)
  if seed >= SEED_LIMIT:
    raise ConfigError(f"config.seed must be below 2**63, got {seed}")
  return seed


def check_model_config(model_config):
  """The architecture is known and ``overrides`` only names keys of its config."""
  known = registry.default_config(model_config.arch)  # ConfigError for an unknown arch
  overrides = model_config.overrides
  overrides = overrides.to_dict() if hasattr(overrides, "to_dict") else dict(overrides or {})
  unknown = sorted(set(overrides) - set(known))
  if unknown:
    raise ConfigError(f"config.model.overrides has key(s) {unknown} that the {model_config.arch!r} "
                      f"config lacks; known keys: {sorted(known)}")


def check_data_config(data_config):
  """The class subset names ESC-50 classes (whether the data holds them is checked on loading);
  a re-split asks for 0 (the data's own folds) or 2..5 folds (ESC-50's fold numbers)."""
  esc50.class_targets(data_config.classes, data_config.dropped_class)
  folds = integer(data_config.get("split_folds", 0), "config.data.split_folds", 0)
  if folds == 1 or folds > len(esc50.FOLDS):
    raise ConfigError(f"config.data.split_folds={folds}: expected 0 (the dataset's own folds) or "
                      f"2..{len(esc50.FOLDS)} folds to re-split into")
  integer(data_config.get("split_seed", 0), "config.data.split_seed", 0)


def check_noise_augment_config(settings):
  """``config.train.noise_augment``: probability in [0, 1], snr_low <= snr_high, a pool."""
  key = "config.train.noise_augment"
  probability = real(settings.probability, f"{key}.probability", 0.0)
  if probability > 1:
    raise ConfigError(f"{key}.probability must lie in [0, 1] (chance per clip and step), got "
                      f"{settings.probability!r}")
  low = real(settings.snr_low, f"{key}.snr_low", -math.inf)
  high = real(settings.snr_high, f"{key}.snr_high", -math.inf)
  if low > high:
    raise ConfigError(f"{key}.snr_low={settings.snr_low!r} dB is above {key}.snr_high="
                      f"{settings.snr_high!r} dB; expected snr_low <= snr_high")
  if isinstance(settings.noises, str) or not tuple(settings.noises):
    raise ConfigError(f"{key}.noises={settings.noises!r}: expected a non-empty sequence of noise "
                      "names (white, pink, brown, blue, violet, esc50:<class>, NAME=PATH, a file "
                      "or folder)")
  for weight in tuple(settings.weights):
    real(weight, f"{key}.weights (each)", 0.0)


def check_train_config(train_config):
  """Every ``config.train`` value the loop reads, with the same functions the loop uses."""
  integer(train_config.batch_size, "config.train.batch_size", 1)
  if real(train_config.get("epochs", 0.0), "config.train.epochs", 0.0) == 0:
    integer(train_config.steps, "config.train.steps (or set config.train.epochs > 0)", 1)
  real(train_config.learning_rate, "config.train.learning_rate", 0.0, inclusive=False)
  real(train_config.lr_decay_rate, "config.train.lr_decay_rate", 0.0, inclusive=False)
  for key in ("weight_decay", "mixup_alpha", "warmup_epochs", "rampdown_start_epoch",
              "rampdown_epochs", "final_lr_factor"):
    real(train_config[key], f"config.train.{key}", 0.0)
  for key in ("time_masks", "time_mask_width", "freq_masks", "freq_mask_width", "warmup_steps",
              "eval_every"):
    integer(train_config.get(key, 0), f"config.train.{key}", 0)
  for key in ("checkpoint_every", "keep_checkpoints", "log_every", "lr_decay_every"):
    integer(train_config.get(key, 1), f"config.train.{key}", 1)
  # Names, the schedule's table and the augmentation cycle: what the loop itself would reject.
  schedule = optim.learning_rate_schedule(train_config, steps_per_epoch=1.0)
  optim.optimizer(train_config, schedule)
  for index in range(max(len(tuple(train_config.augment_cycle)), 1)):
    steps.augmentation_flags(train_config, index)
  if train_config.get("noise_augment") is not None and train_config.noise_augment.enabled:
    check_noise_augment_config(train_config.noise_augment)


def check_test_folds(data_config) -> tuple[int, ...]:
  folds = tuple(data_config.test_folds)
  if not folds:
    raise ConfigError(f"config.data.test_folds is empty: give the folds to test on, some of "
                      f"{esc50.FOLDS}")
  unknown = [fold for fold in folds if isinstance(fold, bool) or fold not in esc50.FOLDS]
  if unknown:
    raise ConfigError(f"config.data.test_folds={folds}: {unknown} are not ESC-50 folds "
                      f"{esc50.FOLDS}")
  return tuple(int(fold) for fold in folds)


def check_sweep_config(sweep_config) -> tuple[float, ...]:
  """The SNR grid as floats, after checking the sweep settings; ConfigError naming the key."""
  try:
    snrs = tuple(float(snr) for snr in sweep_config.snrs)
  except (TypeError, ValueError):
    raise ConfigError(f"config.sweep.snrs must be a sequence of numbers (dB), got "
                      f"{sweep_config.snrs!r}") from None
  if not snrs:
    raise ConfigError("config.sweep.snrs is empty: give at least one SNR in dB, e.g. '(-10,0,10)'")
  if not all(math.isfinite(snr) for snr in snrs):
    raise ConfigError(f"config.sweep.snrs must be finite numbers, got {snrs}")
  if len(set(snrs)) != len(snrs):
    raise ConfigError(f"config.sweep.snrs lists an SNR twice: {snrs}")
  for key in ("realisations", "chunk_clips"):
    integer(sweep_config[key], f"config.sweep.{key}", 1)
  integer(sweep_config.snr_batch, "config.sweep.snr_batch (-1 automatic, 0 all)", -1)
  integer(sweep_config.snr_devices, "config.sweep.snr_devices (0 automatic)", 0)
  if not tuple(sweep_config.noises) + tuple(sweep_config.noise_paths):
    raise ConfigError("config.sweep.noises is empty: give at least one noise (white, pink, brown, "
                      "blue, violet, esc50:<class>, or a file or folder)")
  unknown = [fold for fold in tuple(sweep_config.folds)
             if isinstance(fold, bool) or fold not in esc50.FOLDS]
  if unknown:
    raise ConfigError(f"config.sweep.folds={tuple(sweep_config.folds)}: folds {unknown} are not "
                      f"ESC-50 folds {esc50.FOLDS}")
  return snrs


def check_report_config(report_config):
  """SNRs of the figures are numbers; the runs to compare with hold a finished sweep."""
  for snr in tuple(report_config.confusion_snrs):
    real(snr, "config.report.confusion_snrs (each)", -math.inf)
  real(report_config.spectrogram_snr, "config.report.spectrogram_snr", -math.inf)
  if report_config.get("baseline_model") and not tuple(report_config.compare_workdirs):
    raise ConfigError(f"config.report.baseline_model={report_config.baseline_model!r} needs runs "
                      "to compare with it: set config.report.compare_workdirs")
  for other in tuple(report_config.compare_workdirs):
    path = pathlib.Path(other).expanduser() / store.ACCURACY_FILE
    if not path.is_file():
      raise ConfigError(f"config.report.compare_workdirs: {path} does not exist; list workdirs "
                        "of finished sweeps")


def check_config(config, modes, workdir=None) -> None:
  """Checks everything ``modes`` will read, and looks up the data, noises and checkpoint.

  Args:
    config: the experiment config.
    modes: the stages about to run ('train', 'sweep', 'report').
    workdir: the run's folder; a sweep of the trained models found there needs no checkpoint.

  Raises:
    JaxnoiseError: the first problem found (ConfigError for a key, or a missing dataset, class,
      noise or checkpoint), so nothing runs with a config that would fail later.
  """
  check_seed(config)
  check_data_config(config.data)
  if "train" in modes:
    check_model_config(config.model)
    check_train_config(config.train)
    check_test_folds(config.data)
  if "sweep" in modes:
    check_sweep_config(config.sweep)
  if "report" in modes:
    check_report_config(config.report)
  # The inputs: the same look-ups the stages make first (metadata, classes, noise files). Imported
  # here: those stage modules import this one.
  if "train" in modes:
    from jaxnoise.train import noise_augment, prepare  # pylint: disable=import-outside-toplevel
    prepare.select_records(config)
    if noise_augment.enabled(config.train):
      noise_augment.resolve_pool(config)  # names, files and the leakage check
  if "sweep" in modes:
    from jaxnoise.sweep import run as sweep_run  # pylint: disable=import-outside-toplevel
    sweep_run.resolve_inputs(config)
  if config.model.checkpoint and ("train" in modes or "sweep" in modes):
    from jaxnoise.sweep import model as model_lib  # pylint: disable=import-outside-toplevel
    trained = workdir is not None and any(pathlib.Path(workdir).glob("fold*/model/config.json"))
    if "train" in modes or not trained:
      model_lib.resolve_checkpoint(str(config.model.checkpoint))
