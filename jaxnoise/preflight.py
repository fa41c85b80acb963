"""Everything a run will read, checked before its first mode starts (what launch.py runs first).

Every key the chosen modes read is checked, and the data, classes, noises and checkpoint they name
are looked up (no audio is decoded, no model built), so a mistake in the sweep or report settings is
reported at once rather than after hours of training. This sits above the stages and imports them;
the stages themselves only import ``jaxnoise.config_checks``.
"""
import pathlib

from jaxnoise import config_checks
from jaxnoise.data import selection, sources
from jaxnoise.errors import ConfigError


def check_fold_to_sweep(config, modes, workdir) -> None:
  """A fold chosen by ``config.sweep.model_fold`` will exist when the sweep starts: trained by
  this run (a fold of config.data.test_folds) or already in ``workdir``'s training results."""
  choice = config_checks.check_model_fold(config.sweep.model_fold)
  if choice == "all":
    return
  if "train" in modes:
    folds = config_checks.check_test_folds(config.data)
    if choice != "best" and choice not in folds:
      raise ConfigError(f"config.sweep.model_fold={choice}: this run trains test folds {folds} "
                        "only; choose one of them, 'best' or 'all'")
    return
  from jaxnoise.sweep import model as model_lib  # pylint: disable=import-outside-toplevel
  model_lib.chosen_fold(choice, workdir)


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
  # Stage modules are imported only for the modes asked for: each pulls in its own libraries
  # (orbax for training, matplotlib for the report).
  # pylint: disable=import-outside-toplevel
  config_checks.check_seed(config)
  config_checks.check_compile_cache(config)
  config_checks.check_data_config(config.data)
  if "train" in modes:
    from jaxnoise.train import loop
    config_checks.check_model_config(config.model)
    loop.check_settings(config)
  if "sweep" in modes:
    config_checks.check_sweep_config(config.sweep)
    config_checks.check_folds(tuple(config.sweep.folds), sources.fold_choices(config.data),
                              "config.sweep.folds")
  if "report" in modes:
    from jaxnoise.report import page
    page.check_settings(config)
  # The inputs: the same look-ups the stages make first (metadata, classes, noise files).
  if "train" in modes:
    from jaxnoise.train import noise_augment
    chosen = selection.select(config)
    if noise_augment.enabled(config.train):
      noise_augment.resolve_pool(config, chosen)  # names, files and the leakage check
  if "sweep" in modes:
    from jaxnoise.sweep import run as sweep_run
    sweep_run.resolve_inputs(config)
  if "sweep" in modes or "report" in modes:
    # The report loads the swept model(s) by the same rule as the sweep.
    check_fold_to_sweep(config, modes, workdir)
  if config.model.checkpoint and ("train" in modes or "sweep" in modes):
    from jaxnoise.runtime import checkpoints
    trained = workdir is not None and any(pathlib.Path(workdir).glob("fold*/model/config.json"))
    if "train" in modes or not trained:
      checkpoints.resolve_checkpoint(str(config.model.checkpoint))
