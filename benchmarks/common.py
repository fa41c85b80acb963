"""Timing helpers shared by the benchmark scripts: interleaved repeats, best-of, ratios."""
import time


def best_seconds(function, repeats: int = 5) -> float:
  """Best wall time of ``function()`` over ``repeats`` calls (after one warm-up call)."""
  function()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    function()
    best = min(best, time.perf_counter() - start)
  return best


def interleaved_best(functions: dict, repeats: int = 5, settle_seconds: float = 0.0,
                     calls: dict | None = None) -> dict:
  """Best time of each named function, alternating between them so machine noise hits all alike.

  ``settle_seconds``: a pause before every timed call, so no call starts while the previous one's
  work (another process's, a thread pool's) may still be winding down. ``calls``: timed calls per
  round of the named functions (default 1).
  """
  calls = calls or {}
  for function in functions.values():
    function()
  best = {name: float("inf") for name in functions}
  for _ in range(repeats):
    for name, function in functions.items():
      for _ in range(calls.get(name, 1)):
        if settle_seconds:
          time.sleep(settle_seconds)
        start = time.perf_counter()
        function()
        best[name] = min(best[name], time.perf_counter() - start)
  return best


def print_table(title: str, rows: list, baseline: str, units: int, unit_name: str = "clips"):
  """Prints units/s and the ratio to ``baseline`` for each (name, seconds) row."""
  seconds = dict(rows)
  print(f"\n{title}")
  print(f"  {'method':<44} {unit_name + '/s':>12} {'x ' + baseline:>22}")
  for name, value in rows:
    print(f"  {name:<44} {units / value:12.1f} {seconds[baseline] / value:22.2f}")
