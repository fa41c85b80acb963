"""jaxnoise.runtime: the progress line, the compilation cache, huge pages, CPU devices, the import layering."""
import ast
import io
import logging
import pathlib
import os

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from jaxnoise.runtime import compile_cache, memory, progress

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "jaxnoise"


class FakeClock:
  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


def test_progress_log_lines_rate_eta_and_expected_duration(caplog):
  clock = FakeClock()
  line = progress.Progress("sweep", 100, "mixes", stream=io.StringIO(), log_interval=10.0,
                           clock=clock)
  with caplog.at_level(logging.INFO):
    clock.now += 30.0          # the first chunk: compilation included, no rate yet
    line.update(10, "all pink")
    clock.now += 10.0          # 20 mixes in 10 s -> 2 mixes/s, 70 left -> ETA 35 s
    line.update(30, "all pink")
    clock.now += 2.0           # within the interval: nothing shown
    line.update(38, "all pink")
    clock.now += 8.0           # 90 mixes in 20 s since the first update
    line.update(100, "all white")
  messages = [record.getMessage() for record in caplog.records]
  assert messages == [
      "sweep 10/100 (10%), all pink; first update after 30.0 s (compilation included)",
      "sweep: expected duration 0:01:15 (from the rate after the first update)",
      "sweep 30/100 (30%), all pink, 2 mixes/s, ETA 0:00:35",
      "sweep 100/100 (100%), all white, 4.5 mixes/s, ETA 0:00:00"]


def test_progress_bar_on_a_terminal_is_redrawn_in_place(caplog):
  class Terminal(io.StringIO):
    def isatty(self):
      return True

  clock, stream = FakeClock(), Terminal()
  line = progress.Progress("fold 1 step", 4, "steps", done=2, stream=stream, clock=clock)
  with caplog.at_level(logging.INFO):
    clock.now += 1.0
    line.update(3, "loss 0.5")
    clock.now += 1.0
    line.update(4, "loss 0.4")
  assert not [r for r in caplog.records if "fold 1 step 3/4" in r.getMessage()]
  drawn = stream.getvalue()
  assert drawn.count("\r") == 1 and drawn.endswith("\n")
  assert "[##################......] fold 1 step 3/4 (75%), loss 0.5;" in drawn
  assert "[########################] fold 1 step 4/4 (100%), loss 0.4, 1 steps/s" in drawn


def test_clock_text():
  assert progress.clock_text(3725.4) == "1:02:05"
  assert progress.clock_text(float("nan")) == "?"


def test_persistent_cache_writes_compiled_programs_and_restores_settings(tmp_path):
  before = (jax.config.jax_compilation_cache_dir, jax.config.jax_enable_compilation_cache)
  config = ml_collections.ConfigDict({"compile_cache": True, "cache_dir": str(tmp_path / "xla")})
  # Long enough to compile that it passes MIN_COMPILE_SECONDS on any machine.
  function = jax.jit(lambda x: sum(jnp.sin(x * i) @ x for i in range(150)))
  with compile_cache.persistent_cache(config) as directory:
    assert directory == tmp_path / "xla"
    function(jnp.ones((32, 32))).block_until_ready()
  assert any((tmp_path / "xla").iterdir()), "nothing was written to the cache"
  assert (jax.config.jax_compilation_cache_dir, jax.config.jax_enable_compilation_cache) == before
  config.compile_cache = False
  with compile_cache.persistent_cache(config) as directory:
    assert directory is None and not jax.config.jax_enable_compilation_cache


def stage_imports(path: pathlib.Path) -> set:
  """The jaxnoise top-level packages/modules a file imports (``jaxnoise.X``)."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("jaxnoise"):
      parts = node.module.split(".")
      found |= {parts[1]} if len(parts) > 1 else {alias.name for alias in node.names}
  return found


@pytest.mark.parametrize("layer, forbidden", [
    ("runtime", {"train", "sweep", "report", "config_checks", "preflight"}),
    ("config_checks.py", {"train", "sweep", "report", "preflight", "runtime"}),
    ("train", {"sweep", "report", "preflight"}),
    ("sweep", {"train", "report", "preflight"}),
    ("report", {"train", "preflight"}),
])
def test_stages_import_only_downward(layer, forbidden):
  root = PACKAGE / layer
  paths = [root] if root.is_file() else sorted(root.rglob("*.py"))
  for path in paths:
    assert not stage_imports(path) & forbidden, (path, stage_imports(path) & forbidden)


# A call whose temporaries are one 128 MB product: [16384, 64] @ [64, 2048] in float32, reduced.
# Prints GLIBC_TUNABLES and the minor page faults of each of CALLS calls.
PAGE_FAULTS_SCRIPT = """
import os, resource, sys
sys.path.insert(0, {root!r})
from jaxnoise.runtime import memory
if {restart}:
  memory.restart_with_huge_pages()
import jax, jax.numpy as jnp
left = jnp.ones((16384, 64), jnp.float32)
right = jnp.ones((64, 2048), jnp.float32)
call = jax.jit(lambda a, b: jnp.sin(a @ b).sum())
faults = []
for _ in range({calls}):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  call(left, right).block_until_ready()
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(os.environ.get("GLIBC_TUNABLES", "-"), *faults)
"""
TEMPORARY_PAGES = 16384 * 2048 * 4 // 4096
CALLS = 10


def minor_faults_of_later_calls(restart: bool) -> tuple[str, list[int]]:
  """Runs PAGE_FAULTS_SCRIPT in a fresh process (GLIBC_TUNABLES unset); returns the tunables the
  process ended with and the faults of every call after the first (which compiles)."""
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  script = PAGE_FAULTS_SCRIPT.format(root=str(PACKAGE.parent), restart=restart, calls=CALLS)
  environment = {name: value for name, value in os.environ.items() if name != "GLIBC_TUNABLES"}
  output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, env=environment).stdout.splitlines()[-1].split()
  return output[0], [int(count) for count in output[2:]]


def test_restart_with_huge_pages_faults_large_temporaries_in_2_mib_at_a_time():
  mode, glibc = memory.transparent_huge_pages_mode(), memory.glibc_version()
  if mode != "madvise" or glibc is None or glibc < memory.FIRST_GLIBC_WITH_TUNABLE:
    pytest.skip(f"huge pages are asked for with glibc >= 2.35 and the kernel's transparent huge "
                f"pages 'madvise' (here: glibc {glibc}, '{mode}')")
  tunables, faults = minor_faults_of_later_calls(restart=True)
  assert tunables == "glibc.malloc.hugetlb=1"
  # The product's 64 huge pages, plus at most 2 x 511 pages of 4 KiB where the mapping's ends are
  # not 2-MiB aligned, plus a few small allocations: measured 68-780 per call in 5 processes, in
  # place of one fault per 4-KiB page (32,768).
  assert max(faults) < 64 + 2 * 511 + 300, faults
  tunables, faults = minor_faults_of_later_calls(restart=False)
  assert tunables == "-"
  # Measured 32,7xx-43,8xx on each later call: the product faulted in 4 KiB at a time.
  assert min(faults) > 0.95 * TEMPORARY_PAGES, faults


@pytest.mark.parametrize("environment, mode, glibc, expected", [
    ({}, "madvise", (2, 36), "glibc.malloc.hugetlb=1"),
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, "madvise", (2, 35),
     "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"),
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, "madvise", (2, 36), None),  # the user's choice
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}, "madvise", (2, 36), None),  # restarted already
    ({}, "always", (2, 36), None),  # every large mapping gets huge pages anyway
    ({}, "never", (2, 36), None),
    ({}, "madvise", (2, 34), None),  # glibc without the tunable
    ({}, "madvise", None, None),  # not glibc (musl)
])
def test_huge_pages_environment(environment, mode, glibc, expected):
  restarted = memory.huge_pages_environment(dict(environment, HOME="/home/user"), mode, glibc)
  if expected is None:
    assert restarted is None
  else:
    assert restarted == {"HOME": "/home/user", "GLIBC_TUNABLES": expected}


CPU_DEVICES_SCRIPT = """
import logging, sys
sys.path.insert(0, {root!r})
import jax
from jaxnoise.runtime import distributed
distributed.use_cpu_devices({count})
first = jax.device_count()
logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(message)s")
distributed.use_cpu_devices(first + 1)  # JAX runs now: kept, with a warning
print(first, jax.device_count())
"""


@pytest.mark.parametrize("count, xla_flags, expected, warned", [
    (2, "", ["2 2"], True),
    (0, "", ["1 1"], True),
    (2, "--xla_force_host_platform_device_count=3", ["3 3"], False),  # the explicit flag wins
])
def test_use_cpu_devices_before_jax_starts_and_never_after(count, xla_flags, expected, warned):
  import os  # pylint: disable=import-outside-toplevel
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  script = CPU_DEVICES_SCRIPT.format(root=str(PACKAGE.parent), count=count)
  env = dict(os.environ, XLA_FLAGS=xla_flags, JAX_PLATFORMS="cpu")
  lines = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         check=True).stdout.strip().splitlines()
  assert lines[-1:] == expected
  assert any("not applied: JAX already runs with" in line for line in lines[:-1]) == warned
