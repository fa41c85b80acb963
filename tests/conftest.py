"""Test fixtures shared by the whole suite.

The golden vectors and audio live in ``../shared`` beside the repository (never copied into it);
tests that need them take the ``shared_dir`` fixture and skip with a clear message when it is absent.
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


def find_shared_dir():
  """Returns ``../shared`` relative to the repository root (or $JAXNOISE_SHARED), or None."""
  candidate = os.environ.get("JAXNOISE_SHARED")
  path = pathlib.Path(candidate) if candidate else REPO_ROOT.parent / "shared"
  return path if (path / "golden").is_dir() else None


@pytest.fixture(scope="session")
def shared_dir():
  path = find_shared_dir()
  if path is None:
    pytest.skip(
        f"reference material not found: expected {REPO_ROOT.parent / 'shared'} with golden/ and "
        "data/ (or set JAXNOISE_SHARED); golden-vector tests need it")
  return path


@pytest.fixture(scope="session")
def golden_dir(shared_dir):
  return shared_dir / "golden"


@pytest.fixture(scope="session")
def esc50_dir(shared_dir):
  return shared_dir / "data" / "esc50"


@pytest.fixture(scope="session")
def noise_dir(shared_dir):
  return shared_dir / "data" / "noise"


def run_on_cpu_devices(script: str, count: int) -> dict:
  """Runs ``script`` in a fresh Python (from the repository root) with ``count`` simulated CPU
  devices and returns the JSON it printed after ``RESULT``; fails with its stderr if it fails."""
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={count}",
             JAX_PLATFORMS="cpu")
  done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                        cwd=REPO_ROOT, timeout=600, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  return json.loads(done.stdout.split("RESULT", 1)[1])


def override(config, settings: dict):
  """``config`` with ``{'section.key': value}`` settings applied, as ``--config.section.key=value``
  would on the command line; returns the same config."""
  for key, value in settings.items():
    node = config
    *parents, leaf = key.split(".")
    for parent in parents:
      node = node[parent]
    node[leaf] = value
  return config


def write_esc50(root, clips) -> pathlib.Path:
  """A small dataset in ESC-50's native layout under ``root`` (``audio/``, ``meta/esc50.csv``).

  Args:
    root: the dataset folder (created).
    clips: ``(fold, target, source, audio)`` per clip, in metadata order; ``audio`` is a 44.1 kHz
      waveform (written as 16-bit PCM) or the path of a file copied as is. Files are named
      ``{fold}-{source}-A-{target}.wav`` as upstream's.
  """
  import soundfile  # pylint: disable=import-outside-toplevel
  from jaxnoise.data import esc50  # pylint: disable=import-outside-toplevel
  root = pathlib.Path(root)
  (root / "audio").mkdir(parents=True)
  (root / "meta").mkdir()
  rows = ["filename,fold,target,category,esc10,src_file,take"]
  for fold, target, source, audio in clips:
    name = f"{fold}-{source}-A-{target}.wav"
    if isinstance(audio, (str, pathlib.Path)):
      shutil.copy(audio, root / "audio" / name)
    else:
      soundfile.write(root / "audio" / name, audio, esc50.SAMPLE_RATE, subtype="PCM_16")
    rows.append(f"{name},{fold},{target},{esc50.CLASS_NAMES[target]},False,{source},A")
  (root / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
  return root


def flat_variables(tree) -> dict:
  """``{'['params']['layer']['kernel']': numpy array}`` of a variable tree."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  return {jax.tree_util.keystr(path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def assert_same_variables(first, second):
  """The two variable trees have the same paths and bit-identical values."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  first, second = flat_variables(first), flat_variables(second)
  assert sorted(first) == sorted(second)
  for key, value in first.items():
    np.testing.assert_array_equal(value, second[key], err_msg=key)


def edited_tensors(tensors, drop=(), add=None, reshape=None) -> dict:
  """An upstream state dict with keys dropped, added, or replaced by zeros of another shape."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  result = {key: value for key, value in tensors.items() if key not in drop}
  result.update(add or {})
  for key, shape in (reshape or {}).items():
    result[key] = np.zeros(shape, np.float32)
  return result
