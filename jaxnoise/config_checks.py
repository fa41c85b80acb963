"""Checks of the values in an experiment config (``configs/base.py``), below every stage.

Each stage checks the section it reads before it starts (``jaxnoise.train.loop.check_settings``,
``jaxnoise.sweep.run.run``, ``jaxnoise.report.page.write_report``) with these functions, and
``jaxnoise.preflight.check_config``, which launch.py runs first, checks every mode's sections and
looks up their inputs, so a mistake in the sweep or report settings is reported before hours of
training. This module imports no stage: the stages import it.

Every check raises ConfigError naming the key, its value and what was expected.
"""
import math
import numbers
import pathlib
import tempfile

from jaxnoise.data import clips as clip_loading
from jaxnoise.data import esc50, sources
from jaxnoise.errors import ConfigError
from jaxnoise.models import precision, registry
from jaxnoise.noise.colored import GENERATORS

# jax.random.key and numpy's generators both take any non-negative integer below 2**63.
SEED_LIMIT = 2**63


def integer(value, key: str, minimum: int) -> int:
  """``value`` as an int; ConfigError unless it is an integer >= ``minimum``."""
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
    raise ConfigError(f"{key} must be an integer >= {minimum}, got {value!r}")
  return int(value)


def boolean(value, key: str) -> bool:
  """``value``; ConfigError unless it is True or False."""
  if not isinstance(value, bool):
    raise ConfigError(f"{key} must be True or False, got {value!r}")
  return value


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


def check_precision(value, key: str) -> str:
  """A precision mode of ``jaxnoise.models.precision``; ConfigError naming ``key`` otherwise."""
  if value not in precision.PRECISIONS:
    raise ConfigError(f"{key} must be one of {precision.PRECISIONS}, got {value!r}")
  return value


def check_cpu_devices(train_config):
  """``config.train.cpu_devices`` is a whole number >= 0 that divides the batch."""
  count = train_config.get("cpu_devices", 0)
  if isinstance(count, bool) or not isinstance(count, int) or count < 0:
    raise ConfigError(f"config.train.cpu_devices must be a whole number >= 0 (0: JAX's choice), "
                      f"got {count!r}")
  batch = train_config.get("batch_size", 0)
  if count > 1 and isinstance(batch, int) and batch % count:
    raise ConfigError(f"config.train.cpu_devices={count} does not divide config.train.batch_size="
                      f"{batch}; every device takes an equal share of the batch")


def check_compile_cache(config):
  """``config.compile_cache`` is a bool and, when on, ``config.cache_dir`` a folder that can be
  created and written (checked by writing a temporary file there)."""
  if not boolean(config.compile_cache, "config.compile_cache"):
    return
  text = str(config.cache_dir or "")
  if not text.strip():
    raise ConfigError("config.cache_dir is empty: give a folder for compiled programs, or pass "
                      "--config.compile_cache=False")
  directory = pathlib.Path(text).expanduser()
  try:
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=directory):
      pass
  except OSError as error:
    raise ConfigError(f"config.cache_dir={text!r} cannot be written ({error.strerror or error}); "
                      "give a writable folder or pass --config.compile_cache=False") from None


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
  """The source, split and clip policy are known; for ESC-50 the class subset names its classes
  (whether the data holds them, and another source's classes, are checked on reading it)."""
  source = sources.check_source_name(str(data_config.get("source", "esc50")))
  sources.check_split(data_config)
  clip_loading.check_clip_policy(str(data_config.get("clip_policy", "first")))
  boolean(data_config.get("skip_bad_files", False), "config.data.skip_bad_files")
  if source == "esc50":
    sources.class_targets(data_config.classes, data_config.dropped_class, esc50.CLASS_NAMES,
                          "ESC-50")


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
  """The numbers of ``config.train`` (its names are checked by ``jaxnoise.train.loop``)."""
  integer(train_config.batch_size, "config.train.batch_size", 1)
  check_cpu_devices(train_config)
  boolean(train_config.get("retain_freed_memory", False), "config.train.retain_freed_memory")
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
  check_precision(train_config.precision, "config.train.precision")
  if train_config.get("noise_augment") is not None and train_config.noise_augment.enabled:
    check_noise_augment_config(train_config.noise_augment)


def check_test_folds(data_config) -> tuple[int, ...]:
  folds = tuple(data_config.test_folds)
  choices = sources.fold_choices(data_config)
  if not folds:
    raise ConfigError(f"config.data.test_folds is empty: give the folds to test on, some of "
                      f"{choices or 'the folds of the data'}")
  check_folds(folds, choices, "config.data.test_folds")
  return tuple(int(fold) for fold in folds)


def check_folds(folds, choices, key: str) -> None:
  """Every fold is a positive integer, one of ``choices`` when the config fixes them."""
  unknown = [fold for fold in folds if isinstance(fold, bool) or not isinstance(fold, int)
             or fold < 1 or (choices is not None and fold not in choices)]
  if unknown:
    expected = f"folds {choices}" if choices else "folds (integers >= 1)"
    raise ConfigError(f"{key}={tuple(folds)}: {unknown} are not {expected} of "
                      "config.data.source / config.data.split_folds")


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
  if sweep_config.colored_generator not in GENERATORS:
    raise ConfigError(f"config.sweep.colored_generator={sweep_config.colored_generator!r}: "
                      f"expected one of {', '.join(GENERATORS)}")
  check_precision(sweep_config.precision, "config.sweep.precision")
  if not tuple(sweep_config.noises) + tuple(sweep_config.noise_paths):
    raise ConfigError("config.sweep.noises is empty: give at least one noise (white, pink, brown, "
                      "blue, violet, esc50:<class>, or a file or folder)")
  check_model_fold(sweep_config.model_fold)
  if sweep_config.get("inference_source", ""):
    sources.check_source_name(str(sweep_config.inference_source), "config.sweep.inference_source")
  return snrs


def check_model_fold(value):
  """``config.sweep.model_fold`` as "all", "best" or a fold number (an int, or its digits as the
  command line gives them); ConfigError otherwise."""
  text = str(value).strip()
  if text in ("all", "best"):
    return text
  if not isinstance(value, bool) and text.isdigit() and int(text) in esc50.FOLDS:
    return int(text)
  raise ConfigError(f"config.sweep.model_fold={value!r}: expected 'all' (every fold model on its "
                    f"own test fold), 'best' (the fold with the highest test accuracy in training)"
                    f" or a fold number of {esc50.FOLDS}")


def check_report_config(report_config):
  """The SNRs of the figures are numbers (the runs to compare with: ``jaxnoise.report.page``)."""
  for snr in tuple(report_config.confusion_snrs):
    real(snr, "config.report.confusion_snrs (each)", -math.inf)
  real(report_config.spectrogram_snr, "config.report.spectrogram_snr", -math.inf)
  clip = str(report_config.spectrogram_clip).strip()
  if not clip or (clip.isdigit() and int(clip) >= len(esc50.CLASS_NAMES)):
    raise ConfigError(f"config.report.spectrogram_clip={report_config.spectrogram_clip!r}: expected "
                      f"an ESC-50 target 0-{len(esc50.CLASS_NAMES) - 1} or the file name of a "
                      "swept clip")
  if report_config.get("baseline_model") and not tuple(report_config.compare_workdirs):
    raise ConfigError(f"config.report.baseline_model={report_config.baseline_model!r} needs runs "
                      "to compare with it: set config.report.compare_workdirs")
