"""Backs large allocations with transparent huge pages, so a step's temporaries are not faulted in
4 KiB at a time.

XLA:CPU allocates the temporaries of every call afresh (about 1 GB for mn04's training step at
batch 32, 4 GB for CNN10's at batch 64) and frees them when the call returns. glibc serves a request
that large with a fresh ``mmap`` and unmaps it on ``free``, so every call faults the whole buffer in
again, one 4 KiB page at a time: 240,000 minor faults per mn04 step and a million per CNN10 step on
the 2-core CPU, a third of the step's CPU time spent in the kernel.

glibc 2.35 and later can ask the kernel for transparent huge pages (2 MiB) on the memory it maps
(the tunable ``glibc.malloc.hugetlb=1``): a buffer is then faulted in 512 times less often. Measured
with ``benchmarks/train.py``: the mn04 step ran about 2x as fast, CNN10's and HTS-AT's about 1.3-1.5x,
and the memory is still handed back to the kernel after every call. (Keeping freed memory in the
process instead, with ``mallopt``, removed the faults on one device but fragmented the heap: it grew
by a whole step's temporaries now and then, 4 GB at a time for CNN10.)

Tunables are read when a process starts, so ``restart_with_huge_pages`` executes the same command
again with ``GLIBC_TUNABLES`` extended: ``launch.py`` does this before anything else starts, unless
``--config.huge_pages=False``. Nothing happens where it cannot help: not Linux or not glibc >= 2.35,
the kernel's transparent huge pages ``never`` (or ``always``: every large mapping already gets them),
or the tunable already set (the restarted process, or a user's own choice).
"""
import logging
import os
import pathlib
import platform
import sys

TUNABLES_VARIABLE = "GLIBC_TUNABLES"
HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb"
HUGE_PAGES_SETTING = f"{HUGE_PAGES_TUNABLE}=1"
TRANSPARENT_HUGE_PAGES_MODE = pathlib.Path("/sys/kernel/mm/transparent_hugepage/enabled")
FIRST_GLIBC_WITH_TUNABLE = (2, 35)


def transparent_huge_pages_mode() -> str:
  """The kernel's setting, ``always``, ``madvise`` or ``never``; ``never`` where there is none."""
  try:
    text = TRANSPARENT_HUGE_PAGES_MODE.read_text()
  except OSError:
    return "never"
  return text[text.index("[") + 1:text.index("]")] if "[" in text else "never"


def glibc_version() -> tuple[int, ...] | None:
  """``(major, minor)`` of the C library, or None where it is not glibc."""
  library, version = platform.libc_ver()
  if library != "glibc" or not version:
    return None
  return tuple(int(part) for part in version.split(".")[:2] if part.isdigit())


def huge_pages_environment(environment: dict, mode: str,
                           glibc: tuple[int, ...] | None) -> dict | None:
  """The environment to restart with so that glibc asks for huge pages, or None when it would not help.

  Args:
    environment: the current environment (``os.environ``).
    mode: the kernel's transparent huge pages setting (``transparent_huge_pages_mode()``).
    glibc: ``glibc_version()``.

  Returns:
    A copy of ``environment`` whose ``GLIBC_TUNABLES`` also holds ``glibc.malloc.hugetlb=1`` (the
    tunables already there are kept), or None.
  """
  if mode != "madvise" or glibc is None or glibc < FIRST_GLIBC_WITH_TUNABLE:
    return None
  tunables = environment.get(TUNABLES_VARIABLE, "")
  if any(item.split("=")[0] == HUGE_PAGES_TUNABLE for item in tunables.split(":")):
    return None
  restarted = dict(environment)
  restarted[TUNABLES_VARIABLE] = f"{tunables}:{HUGE_PAGES_SETTING}" if tunables else HUGE_PAGES_SETTING
  return restarted


def restart_with_huge_pages() -> None:
  """Executes this process's command again with glibc asking for huge pages, where that helps.

  Returns only when there is nothing to do; otherwise the process is replaced (same pid, same
  arguments, same interpreter flags). Call it before any work that would be lost.
  """
  if not sys.platform.startswith("linux"):
    return
  environment = huge_pages_environment(dict(os.environ), transparent_huge_pages_mode(),
                                       glibc_version())
  if environment is None:
    return
  logging.info("restarting with %s=%s: glibc backs large allocations with transparent huge pages "
               "(--config.huge_pages=False: off)", TUNABLES_VARIABLE,
               environment[TUNABLES_VARIABLE])
  for stream in (sys.stdout, sys.stderr):
    stream.flush()
  os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environment)
