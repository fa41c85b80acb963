"""The checkpoint a config names, as a converted model directory both stages load.

``config.model.checkpoint`` is a converted model directory or an upstream PyTorch checkpoint; an
upstream file is converted once and cached in ``<cache_dir>/models/``. A published checkpoint named
like its release asset (``mn04_as_mAP_432.pt``) that is not on disk is downloaded once to that path.
"""
import logging
import pathlib
import shutil
import tempfile
import urllib.error
import urllib.request

import jax
from jax.experimental import multihost_utils

from jaxnoise.errors import ConfigError, JaxnoiseError
from jaxnoise.models import store

# Published checkpoints that can be fetched by file name: name -> (url, sha256).
RELEASES = {
    "mn04_as_mAP_432.pt": (
        "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/mn04_as_mAP_432.pt",
        "899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c"),
}


def download_release(path: pathlib.Path):
  """Fetches the published checkpoint named ``path.name`` to ``path``, checking its sha256."""
  url, expected = RELEASES[path.name]
  path.parent.mkdir(parents=True, exist_ok=True)
  handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
  logging.info("downloading %s to %s", url, path)
  try:
    with urllib.request.urlopen(url, timeout=60) as response, open(handle, "wb") as out:
      shutil.copyfileobj(response, out, length=1 << 20)
    actual = store.file_sha256(temporary)
    if actual != expected:
      raise JaxnoiseError(f"the file downloaded from {url} has sha256 {actual}, expected {expected}")
    pathlib.Path(temporary).replace(path)
  finally:
    pathlib.Path(temporary).unlink(missing_ok=True)


def resolve_checkpoint(text: str) -> pathlib.Path:
  """The checkpoint path of the config, downloading a known release that is missing."""
  path = pathlib.Path(text).expanduser()
  if path.exists():
    return path
  if path.name not in RELEASES:
    raise ConfigError(f"config.model.checkpoint={text!r} does not exist; expected a converted model "
                      "directory or an upstream PyTorch checkpoint file")
  url = RELEASES[path.name][0]
  try:
    download_release(path)
  except (urllib.error.URLError, OSError) as error:
    raise JaxnoiseError(
        f"the checkpoint {path} is not on disk and downloading it from {url} failed "
        f"({type(error).__name__}: {error}). Offline? Fetch {url} on a connected machine and pass "
        f"--config.model.checkpoint=/path/to/{path.name} (or a converted model directory)") from None
  return path


def converted_directory(arch: str, source: pathlib.Path, cache_dir) -> pathlib.Path:
  """A converted model directory for the upstream file ``source`` (converted once, then cached)."""
  digest = store.file_sha256(source)
  out = pathlib.Path(cache_dir).expanduser() / "models" / f"{digest[:16]}-{arch}"

  def convert_if_missing():
    if not (out / store.CONFIG_FILE).is_file():
      from jaxnoise import convert  # pylint: disable=import-outside-toplevel
      logging.info("converting %s (%s) into %s", source, arch, out)
      # The head is what is swept: a mismatched head would be random, so it is never allowed.
      convert.convert_to_directory(arch, source, out, allow_head_mismatch=False)

  if jax.process_count() > 1:
    # Hosts sharing a filesystem must not convert into the same folder at once: process 0 goes
    # first, the others then find its result (or convert their own copy on a private disk).
    if jax.process_index() == 0:
      convert_if_missing()
    multihost_utils.sync_global_devices(f"jaxnoise: converted {digest}")
  convert_if_missing()
  return out


def model_directory(text: str, arch: str, cache_dir) -> tuple[pathlib.Path, pathlib.Path, dict]:
  """``(source, directory, provenance)`` for ``config.model.checkpoint=text``.

  ``directory`` is ``source`` itself for a converted directory, else the cached conversion of the
  upstream file (made now if missing); ``provenance`` holds the file's sha256 and the directory.
  """
  source = resolve_checkpoint(text)
  if source.is_dir():
    return source, source, {}
  directory = converted_directory(arch, source, cache_dir)
  return source, directory, {"sha256": store.file_sha256(source), "converted": str(directory)}
