"""JAX's persistent compilation cache, set from the config when a run starts (never at import).

Every model's compiled sweep and training step are written under ``config.cache_dir`` (default
``~/.cache/jaxnoise/xla``); a rerun, a resumed run or another run of the same model and shapes loads
them instead of compiling again (XLA:CPU takes tens of seconds per model). ``--config.compile_cache
=False`` turns it off. The cache holds executables this process will run, so it must be a folder
only the user can write (JAX's own warning).
"""
import contextlib
import pathlib

import jax
from jax.experimental.compilation_cache import compilation_cache

# Compilations shorter than this are not written: small helpers (initialisation, gathers) compile
# in milliseconds, and a file per helper would only grow the cache.
MIN_COMPILE_SECONDS = 0.5
_SETTINGS = ("jax_enable_compilation_cache", "jax_compilation_cache_dir",
             "jax_persistent_cache_min_compile_time_secs")


def cache_directory(config) -> pathlib.Path | None:
  """The cache folder ``config`` asks for, or None when ``config.compile_cache`` is off."""
  if not config.compile_cache:
    return None
  return pathlib.Path(str(config.cache_dir)).expanduser()


@contextlib.contextmanager
def persistent_cache(config):
  """Runs the block with the persistent cache of ``config`` (or none), then restores JAX's previous
  settings, so a process that launches several runs (tests, notebooks) carries none of them over.

  Yields:
    the cache folder in use, or None.
  """
  directory = cache_directory(config)
  previous = {name: getattr(jax.config, name) for name in _SETTINGS}
  # JAX opens its cache once per process, on the first compilation: reset it so these settings
  # (not those of an earlier run in this process) take effect, and again on the way out.
  compilation_cache.reset_cache()
  try:
    jax.config.update("jax_enable_compilation_cache", directory is not None)
    jax.config.update("jax_compilation_cache_dir", None if directory is None else str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    yield directory
  finally:
    for name, value in previous.items():
      jax.config.update(name, value)
    compilation_cache.reset_cache()
