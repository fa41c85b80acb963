"""Every script under benchmarks/ still imports: they are not run by the suite, and one broke
unnoticed when a library function it imported moved. Imports only, nothing is timed.

None of them may need torch to import (the PyTorch baselines import it when built), so each is
imported afresh with ``import torch`` made to fail.
"""
import importlib
import importlib.abc
import pathlib
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # benchmarks/ and configs/ of this checkout
  sys.path.insert(0, str(REPO_ROOT))

BENCHMARKS = sorted(path.stem for path in (REPO_ROOT / "benchmarks").glob("*.py")
                    if path.stem != "__init__")


class NoTorch(importlib.abc.MetaPathFinder):
  """Makes ``import torch`` (and its submodules) fail as on a machine without it."""

  def find_spec(self, fullname, path, target=None):  # pylint: disable=unused-argument
    if fullname == "torch" or fullname.startswith("torch."):
      raise ModuleNotFoundError(f"No module named {fullname!r} (hidden by the test)",
                                name=fullname)
    return None


def test_benchmarks_are_found():
  assert {"train", "torch_baselines", "sweep", "frontend"} <= set(BENCHMARKS)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_imports_without_torch(name, monkeypatch):
  # Forget torch if another test loaded it, and the benchmarks, so that all import afresh; the
  # monkeypatch puts every module back afterwards.
  for loaded in [module for module in sys.modules
                 if module == "torch" or module.startswith(("torch.", "benchmarks."))]:
    monkeypatch.delitem(sys.modules, loaded)
  monkeypatch.setattr(sys, "meta_path", [NoTorch(), *sys.meta_path])
  module = importlib.import_module(f"benchmarks.{name}")
  assert module.__file__ == str(REPO_ROOT / "benchmarks" / f"{name}.py")
