"""jaxnoise.runtime: the progress line, the persistent compilation cache, the import layering."""
import ast
import io
import logging
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from jaxnoise.runtime import compile_cache, progress

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
# Prints the minor page faults of each of CALLS calls.
PAGE_FAULTS_SCRIPT = """
import resource, sys
sys.path.insert(0, {root!r})
from jaxnoise.runtime import memory
retained = memory.retain_freed_memory() if {retain} else None
import jax, jax.numpy as jnp
left = jnp.ones((16384, 64), jnp.float32)
right = jnp.ones((64, 2048), jnp.float32)
call = jax.jit(lambda a, b: jnp.sin(a @ b).sum())
faults = []
for _ in range({calls}):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  call(left, right).block_until_ready()
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(retained, *faults)
"""
TEMPORARY_PAGES = 16384 * 2048 * 4 // 4096
CALLS = 40


def minor_faults_of_later_calls(retain: bool) -> tuple[str, list[int]]:
  """Runs PAGE_FAULTS_SCRIPT in a fresh process; returns what retain_freed_memory returned and the
  faults of every call after the first (which compiles and grows the heap)."""
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  script = PAGE_FAULTS_SCRIPT.format(root=str(PACKAGE.parent), retain=retain, calls=CALLS)
  output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True).stdout.splitlines()[-1].split()
  return output[0], [int(count) for count in output[2:]]


def test_retained_memory_is_mostly_not_faulted_in_again():
  import platform  # pylint: disable=import-outside-toplevel
  if platform.libc_ver()[0] != "glibc":
    pytest.skip("retain_freed_memory sets glibc's malloc only")
  retained, faults = minor_faults_of_later_calls(retain=True)
  assert retained == "True"
  # Measured in 60 processes: 31-39 of the 39 later calls faulted fewer than 100 pages (the
  # product's 32,768 pages stayed mapped); in the others the heap had to grow by the product
  # (small allocations between calls had split the freed block), faulting its pages in once.
  assert sum(count < 100 for count in faults) >= 28, faults
  transparent_huge_pages = pathlib.Path("/sys/kernel/mm/transparent_hugepage/enabled")
  if "[always]" not in (transparent_huge_pages.read_text() if transparent_huge_pages.exists()
                        else ""):
    # Without it every call maps the product anew and faults in each 4-KiB page: measured
    # 32,7xx-43,8xx on each of the 39 later calls in 10 processes.
    _, faults = minor_faults_of_later_calls(retain=False)
    assert min(faults) > 0.95 * TEMPORARY_PAGES, faults


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
