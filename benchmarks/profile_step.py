"""Where a training step's CPU time goes: XLA operations of one step, from a ``jax.profiler`` trace.

Builds the step of ``benchmarks/train.py`` (random weights, the config's batch size and CPU device
count, or --batch / --cpu-devices), runs it a few times, then traces --steps steps and prints the
time per step of XLA's operations on its threads: first the largest operations by name
(``ynn_fusion.32``: a matrix product or convolution; ``copy_*`` / ``transpose_*``: copies;
``while``: a loop such as the CNNs' kernel gradient), then grouped by kind (the name without its
number), with each kind's share of the step's CPU time (step seconds x the cores the process may
use). Names are those of the compiled HLO; ``--hlo FILE`` writes its text, where
``%name = shape ...`` says which layer an operation belongs to (``metadata={op_name=...}``). Nested
operations (the body of a loop) are counted both on their own and inside the loop, and what no
operation covers (dispatch, idle cores, page faults) is in no row. Timings are printed, never
asserted.

  python benchmarks/profile_step.py --model cnn10 [--batch 64] [--top 20] [--hlo cnn10.hlo]
"""
import argparse
import collections
import gzip
import json
import os
import pathlib
import re
import sys
import tempfile
import time

import jax

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from benchmarks import train  # pylint: disable=wrong-import-position

# Spans that contain other operations (the executor's own), not operations of the program.
ENCLOSING = ("ThunkExecutor::Execute", "SlinkyThreadPool::Await")
# XLA:CPU's threads, which run a program's operations (its Eigen pool, and the client's threads,
# which run small operations themselves).
COMPUTE_THREAD_PREFIX = "tf_XLA"


def operation_times(trace_events: list, steps: int) -> dict:
  """``{operation name: milliseconds per step}`` summed over XLA's threads in a Chrome-format
  trace (``traceEvents``)."""
  thread_names = {(event["pid"], event["tid"]): event["args"]["name"] for event in trace_events
                  if event.get("ph") == "M" and event.get("name") == "thread_name"}
  compute = {key for key, name in thread_names.items() if name.startswith(COMPUTE_THREAD_PREFIX)}
  totals = collections.Counter()
  for event in trace_events:
    if (event.get("ph") == "X" and (event["pid"], event["tid"]) in compute
        and not event["name"].startswith(ENCLOSING)):
      totals[event["name"]] += event["dur"] / 1e3 / steps
  return dict(totals)


def by_kind(times: dict) -> dict:
  """Operation times grouped by name without its number (``ynn_fusion.32`` -> ``ynn_fusion``)."""
  kinds = collections.Counter()
  for name, milliseconds in times.items():
    kinds[re.sub(r"\.\d+$", "", name)] += milliseconds
  return dict(kinds)


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--model", choices=sorted(train.MODELS), default="mn04")
  parser.add_argument("--batch", type=int, default=0, help="0: the config's batch size")
  parser.add_argument("--cpu-devices", type=int, default=-1,
                      help="config.train.cpu_devices (-1: that of the model's configs/*.py)")
  parser.add_argument("--steps", type=int, default=2, help="steps traced")
  parser.add_argument("--top", type=int, default=20, help="operations listed by name")
  parser.add_argument("--hlo", type=pathlib.Path, default=None, help="write the compiled HLO here")
  args = parser.parse_args()
  spec, variables, clips, labels, train_config = train.prepare(args.model, args.batch,
                                                               args.cpu_devices)
  batch = len(labels)
  run, _, _, hlo_text = train.jax_step(spec, variables, clips, labels, train_config,
                                       with_hlo=True)
  if args.hlo:
    args.hlo.write_text(hlo_text)
  for _ in range(3):
    run()
  started = time.perf_counter()
  for _ in range(args.steps):
    run()
  step_seconds = (time.perf_counter() - started) / args.steps
  with tempfile.TemporaryDirectory() as directory:
    with jax.profiler.trace(directory, create_perfetto_trace=True):
      for _ in range(args.steps):
        run()
    trace_file = sorted(pathlib.Path(directory).rglob("*.trace.json.gz"))[-1]
    with gzip.open(trace_file) as stream:
      events = json.load(stream)["traceEvents"]
  times = operation_times(events, args.steps)
  cores = len(os.sched_getaffinity(0))
  cpu_milliseconds = step_seconds * 1e3 * cores
  print(f"\n{args.model} training step, batch {batch}, {jax.device_count()} CPU device(s): "
        f"{step_seconds:.2f} s per step untraced x {cores} cores = "
        f"{cpu_milliseconds / 1e3:.1f} CPU-s per step; operations found in the trace: "
        f"{sum(times.values()) / cpu_milliseconds:.0%} of it (counting a loop and its body)")
  print("  largest operations (ms per step, all of XLA's threads):")
  for name, milliseconds in sorted(times.items(), key=lambda item: -item[1])[:args.top]:
    print(f"  {milliseconds:9.1f}  {name}")
  print("  by kind (ms per step, share of the step's CPU time):")
  for name, milliseconds in sorted(by_kind(times).items(), key=lambda item: -item[1])[:args.top]:
    print(f"  {milliseconds:9.1f}  {milliseconds / cpu_milliseconds:6.1%}  {name}")


if __name__ == "__main__":
  main()
