"""Runs an experiment: python launch.py --config=configs/quickstart.py --workdir=runs/quickstart

The config (an ml_collections config file, see configs/base.py) names the modes to run, in order:
'train' (jaxnoise.train), 'sweep' (jaxnoise.sweep) and 'report' (jaxnoise.report), or 'all'. Every
config value can be overridden on the command line, e.g. --config.sweep.snrs='(-20,0,20)'.
A mistake in the inputs prints one line starting with 'error:' and exits with status 2; the config,
data, noises and checkpoint are checked before any mode starts (jaxnoise.preflight).
"""
import logging
import pathlib
import sys

# Config files import `from configs import base`, so the repository root must be importable.
REPO_ROOT = pathlib.Path(__file__).resolve().parent
if str(REPO_ROOT) not in sys.path:
  sys.path.insert(0, str(REPO_ROOT))

from absl import flags  # pylint: disable=wrong-import-position
from ml_collections import config_flags  # pylint: disable=wrong-import-position

from jaxnoise import cli, preflight  # pylint: disable=wrong-import-position
from jaxnoise.errors import ConfigError  # pylint: disable=wrong-import-position
from jaxnoise.runtime import compile_cache  # pylint: disable=wrong-import-position

MODES = ("train", "sweep", "report")

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file (configs/*.py)")
_WORKDIR = flags.DEFINE_string("workdir", None, "folder for checkpoints, results and the report")


def modes_of(config) -> tuple[str, ...]:
  """``config.modes`` as a tuple of known modes ('all' = train, sweep, report)."""
  modes = config.modes
  modes = (modes,) if isinstance(modes, str) else tuple(modes)
  if modes == ("all",):
    return MODES
  unknown = [mode for mode in modes if mode not in MODES]
  if unknown or not modes:
    raise ConfigError(f"config.modes={modes!r}: expected some of {MODES} (in order) or 'all'")
  return modes


def run(config, workdir) -> None:
  """Runs the modes of ``config`` in ``workdir``, after checking everything they will read."""
  workdir = pathlib.Path(workdir).expanduser()
  modes = modes_of(config)
  preflight.check_config(config, modes, workdir)
  try:
    workdir.mkdir(parents=True, exist_ok=True)
  except OSError as error:
    raise ConfigError(f"--workdir={workdir} cannot be created: {error}") from None
  with compile_cache.persistent_cache(config) as cache:
    if cache is not None:
      logging.info("compiled programs are cached in %s (--config.compile_cache=False: off)", cache)
    for mode in modes:
      logging.info("mode %s -> %s", mode, workdir)
      if mode == "train":
        from jaxnoise.train import loop  # pylint: disable=import-outside-toplevel
        loop.train(config, workdir)
      elif mode == "sweep":
        from jaxnoise.sweep import run as sweep_run  # pylint: disable=import-outside-toplevel
        sweep_run.run(config, workdir)
      else:
        from jaxnoise.report import page  # pylint: disable=import-outside-toplevel
        written = page.write_report(config, workdir)
        if written:
          print(f"report: {written['html']}")


def main(argv):
  try:
    flags.FLAGS(argv)
  except flags.Error as error:
    # A config file's own error (e.g. an unknown :variant) comes with its traceback: keep the
    # first line (which file) and the last (what is wrong).
    lines = str(error).strip().splitlines()
    print(f"error: {lines[0]} {lines[-1]}" if len(lines) > 1 else f"error: {error}",
          file=sys.stderr)
    return 2
  except (AttributeError, KeyError, TypeError, ValueError) as error:
    # ml_collections reports an override of a key the config lacks as a bare AttributeError.
    print(f"error: a --config.* override does not fit the config (unknown key or wrong type): "
          f"{type(error).__name__}: {error}", file=sys.stderr)
    return 2
  if _CONFIG.value is None or not _WORKDIR.value:
    print("error: give --config=CONFIG_FILE and --workdir=DIR (e.g. --config=configs/quickstart.py "
          "--workdir=runs/quickstart)", file=sys.stderr)
    return 2
  try:
    config = _CONFIG.value
    config.keys()  # a config file that failed to load says so only when first read
  except OSError as error:
    filename = config_flags.get_config_filename(flags.FLAGS["config"])
    reason = "no such file" if not pathlib.Path(filename).is_file() else str(error).splitlines()[0]
    print(f"error: --config={filename} cannot be loaded ({reason}); expected a config file such as "
          "configs/quickstart.py", file=sys.stderr)
    return 2
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                      datefmt="%H:%M:%S")
  # Orbax logs every checkpoint step through absl at INFO; keep the console to jaxnoise's progress.
  logging.getLogger("absl").setLevel(logging.WARNING)
  logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # "no TPU/GPU" notices
  return cli.run_main(lambda _: run(config, _WORKDIR.value))


if __name__ == "__main__":
  sys.exit(main(sys.argv))
