"""Wall time of the README's main command, with a cold and then a warm compilation cache.

Runs ``python launch.py --config=configs/quickstart.py --workdir=<fresh folder>`` twice as a new
user would, each into a new workdir: the first with an empty ``config.cache_dir`` (every model and
function compiled), the second with the cache the first one filled. The checkpoint is converted
beforehand (the README's "model already converted and cached" case) and not timed. Printed: the
whole command's wall time, the sweep's share (run.json) and the rest (start-up, checks, report).

  python benchmarks/quickstart.py [-- --config.sweep.snrs='(-10,0,10)' ...]

Arguments after ``--`` are passed on to launch.py (e.g. a smaller grid on a busy machine).
"""
import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from configs import quickstart  # pylint: disable=wrong-import-position
from jaxnoise.runtime import checkpoints  # pylint: disable=wrong-import-position


def timed_launch(workdir: pathlib.Path, cache_dir: pathlib.Path, extra) -> dict:
  """Seconds of one launch.py run of the quickstart, and of its sweep (run.json)."""
  command = [sys.executable, str(REPO_ROOT / "launch.py"),
             f"--config={REPO_ROOT / 'configs' / 'quickstart.py'}", f"--workdir={workdir}",
             f"--config.cache_dir={cache_dir}", *extra]
  started = time.perf_counter()
  process = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
  seconds = time.perf_counter() - started
  if process.returncode:
    raise SystemExit(f"launch.py failed ({process.returncode}):\n{process.stderr[-3000:]}")
  sweep = json.loads((workdir / "run.json").read_text())["timing"]["seconds"]
  return {"total": seconds, "sweep": sweep}


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("extra", nargs="*", help="launch.py arguments (after --)")
  args = parser.parse_args()
  config = quickstart.get_config()
  checkpoints.model_directory(str(config.model.checkpoint), config.model.arch,
                              config.data.cache_dir)  # converted once, untimed
  folder = pathlib.Path(tempfile.mkdtemp(prefix="jaxnoise-quickstart-"))
  cache_dir = folder / "xla"
  runs = {"first run (empty compilation cache)": timed_launch(folder / "first", cache_dir,
                                                               args.extra),
          "second run (warm compilation cache)": timed_launch(folder / "second", cache_dir,
                                                               args.extra)}
  print(f"\nquickstart {' '.join(args.extra) or '(the full grid)'}; working folder {folder}")
  print(f"  {'':<40} {'whole command':>14} {'sweep':>8} {'rest':>8}")
  for name, seconds in runs.items():
    print(f"  {name:<40} {seconds['total']:12.1f} s {seconds['sweep']:6.1f} s "
          f"{seconds['total'] - seconds['sweep']:6.1f} s")
  first, second = runs.values()
  print(f"  the warm cache saves {first['total'] - second['total']:.1f} s "
        f"({1 - second['total'] / first['total']:.0%} of the first run)")


if __name__ == "__main__":
  main()
