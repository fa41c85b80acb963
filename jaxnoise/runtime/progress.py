"""One progress line for a long loop: done / total, rate, ETA.

On a terminal the line is redrawn in place (a bar, at most every ``tty_interval`` seconds);
otherwise it is a plain log record at most every ``log_interval`` seconds (and at the end), so
logs written to a file stay one parseable record per line::

  12:00:05 INFO sweep 1040/20410 (5%), all/pink, 52.1 mixes/s, ETA 0:06:12

The rate counts only the work after the first update, whose time includes compilation; the first
update instead says how long it took, and the second logs the expected total duration.
"""
import logging
import math
import sys
import time


def clock_text(seconds: float) -> str:
  """``H:MM:SS`` of a duration (days counted in hours); '?' when unknown."""
  if not math.isfinite(seconds):
    return "?"
  seconds = int(round(seconds))
  return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
  """Progress of ``total`` units of work named ``unit`` (e.g. 'mixes', 'steps').

  Args:
    label: what runs ('sweep', 'fold 1').
    total: units to do in this run.
    unit: the name of a unit, plural ('mixes', 'steps').
    done: units already done before this run (a resumed run); they count for neither the rate nor
      the ETA.
    stream: where the terminal bar goes (default stderr); the bar is used only if it is a tty.
    log_interval, tty_interval: least seconds between two updates shown.
    clock: a monotonic clock (tests pass their own).
  """

  def __init__(self, label: str, total: int, unit: str, *, done: int = 0, stream=None,
               log_interval: float = 10.0, tty_interval: float = 0.5, clock=time.monotonic):
    self.label, self.total, self.unit = label, int(total), unit
    self.done = self.resumed = int(done)
    self.stream = stream if stream is not None else sys.stderr
    self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
    self.interval = tty_interval if self.tty else log_interval
    self.clock = clock
    self.started = clock()
    self.first = None          # (time, done) at the first update: the rate counts from there
    self.shown = -math.inf
    self.updates = 0

  def rate(self) -> float:
    """Units per second since the first update (NaN before the second)."""
    if self.first is None:
      return math.nan
    elapsed = self.clock() - self.first[0]
    return (self.done - self.first[1]) / elapsed if elapsed > 0 else math.nan

  def eta(self) -> float:
    rate = self.rate()
    return (self.total - self.done) / rate if rate > 0 else math.nan

  def line(self, extra: str = "") -> str:
    """The progress text, e.g. 'sweep 1040/20410 (5%), all/pink, 52.1 mixes/s, ETA 0:06:12'."""
    share = self.done / self.total if self.total else 1.0
    text = f"{self.label} {self.done}/{self.total} ({share:.0%})"
    if extra:
      text += f", {extra}"
    rate = self.rate()
    if math.isfinite(rate):
      text += f", {rate:.3g} {self.unit}/s, ETA {clock_text(self.eta())}"
    return text

  def update(self, done: int, extra: str = ""):
    """Records ``done`` units in all; shows the line if ``interval`` passed (always at the end)."""
    self.done = int(done)
    self.updates += 1
    now = self.clock()
    if self.first is None:
      self.first = (now, self.done)
      self._show(f"{self.line(extra)}; first update after {now - self.started:.1f} s "
                 "(compilation included)", final=self.done >= self.total)
      return
    if self.updates == 2 and self.done < self.total:
      expected = now - self.started + self.eta()
      logging.info("%s: expected duration %s (from the rate after the first update)", self.label,
                   clock_text(expected))
    if now - self.shown >= self.interval or self.done >= self.total:
      self._show(self.line(extra), final=self.done >= self.total)

  def _show(self, text: str, final: bool):
    self.shown = self.clock()
    if not self.tty:
      logging.info("%s", text)
      return
    # Drawn, then the cursor goes back to the line's start: a log record printed next overwrites
    # the bar instead of being glued to its end.
    width = 24
    filled = int(width * min(self.done / self.total, 1.0)) if self.total else width
    self.stream.write(f"\x1b[K[{'#' * filled}{'.' * (width - filled)}] {text}"
                      + ("\n" if final else "\r"))
    self.stream.flush()
