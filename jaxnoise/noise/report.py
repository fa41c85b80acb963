"""The noise report: a PSD plot of the noises and their nominal in-band power (the study's table).

"Nominal" power is the band power (``jaxnoise.noise.power``) of the unit-variance noise realisation
before any gain, i.e. the ``P_n0`` that every alpha divides by.
"""
import contextlib
import csv
import math
import os
import pathlib
import tempfile

import jax
import numpy as np

from jaxnoise.errors import AudioError, ConfigError
from jaxnoise.noise.colored import COLORS
from jaxnoise.noise.power import as_band, band_indices, band_power
from jaxnoise.noise.recorded import noise_by_name, noise_label, noise_labels

CSV_NAME = "noise_power.csv"
PLOT_NAME = "noise_psd.png"
CSV_COLUMNS = ("noise", "source", "sample_rate", "num_samples", "fmin", "fmax", "ind_min",
               "ind_max", "band_power", "band_power_db")


@contextlib.contextmanager
def atomic_output(path):
  """Yields a temporary path beside ``path``; renames it onto ``path`` only if the block succeeds.

  A reader never sees a half-written file, and an interrupted run leaves the old file intact.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.",
                                       suffix=f".tmp{path.suffix}")
  os.close(handle)
  try:
    yield pathlib.Path(temporary)
    os.replace(temporary, path)
  finally:
    if os.path.exists(temporary):
      os.remove(temporary)


def validate_band(band, sample_rate: float, what: str = "") -> tuple[float, float]:
  """``(fmin, fmax)`` as floats; ConfigError unless 0 <= fmin < fmax <= sample_rate / 2."""
  fmin, fmax = as_band(band)
  where = f" for {what}" if what else ""
  if not 0 <= fmin < fmax:
    raise ConfigError(f"band ({fmin:g}, {fmax:g}) Hz{where}: expected 0 <= fmin < fmax")
  if fmax > sample_rate / 2:
    raise ConfigError(f"band ({fmin:g}, {fmax:g}) Hz{where}: fmax is above the Nyquist frequency "
                      f"{sample_rate / 2:g} Hz of sample rate {sample_rate:g} Hz")
  return fmin, fmax


def make_noises(names, key: jax.Array, num_samples: int, sample_rate: int,
                generator: str = "psd") -> dict:
  """``{label: noise [num_samples] float32 numpy}`` for colors and/or files (noise_by_name)."""
  return {label: np.asarray(noise_by_name(name, key, num_samples, sample_rate, generator))
          for label, name in zip(noise_labels(names), names)}


def nominal_noise_power(noises: dict, sources: dict, sample_rate: int, bands) -> list[dict]:
  """One CSV row per (noise, band): the band power and its dB value (``10 log10 P``)."""
  rows = []
  labels = list(noises)
  stacked = np.stack([noises[label] for label in labels])
  for band in bands:
    fmin, fmax = validate_band(band, sample_rate)
    ind_min, ind_max = band_indices(stacked.shape[-1], sample_rate, (fmin, fmax))
    powers = np.asarray(band_power(stacked, sample_rate, (fmin, fmax)), dtype=np.float64)
    for label, power in zip(labels, powers):
      if not power > 0:
        # The same refusal as mixing: no gain could set an SNR with it (and its dB would be -inf).
        raise AudioError(f"noise {label} ({sources[label]}) has no power in the band ({fmin:g}, "
                         f"{fmax:g}) Hz at {sample_rate} Hz, so no gain can set an SNR with it")
      rows.append({
          "noise": label, "source": sources[label], "sample_rate": sample_rate,
          "num_samples": stacked.shape[-1], "fmin": fmin, "fmax": fmax, "ind_min": ind_min,
          "ind_max": ind_max, "band_power": float(power),
          "band_power_db": float(10 * np.log10(power))})
  return rows


def write_csv(path, rows, columns=CSV_COLUMNS) -> pathlib.Path:
  with atomic_output(path) as temporary:
    with open(temporary, "w", newline="", encoding="utf-8") as stream:
      writer = csv.DictWriter(stream, fieldnames=columns)
      writer.writeheader()
      for row in rows:
        writer.writerow({key: (repr(value) if isinstance(value, float) else value)
                         for key, value in row.items()})
  return pathlib.Path(path)


def plot_noise_psd(path, noises: dict, sample_rate: int, bands) -> pathlib.Path:
  """Welch PSD of every noise on log-log axes, the SNR band edges dashed; written as PNG."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  import scipy.signal  # pylint: disable=import-outside-toplevel

  figure, axes = plt.subplots(figsize=(7, 4.5))
  floors = []
  for label, noise in noises.items():
    frequencies, density = scipy.signal.welch(noise.astype(np.float64), fs=sample_rate,
                                              nperseg=min(8192, noise.shape[-1]))
    axes.loglog(frequencies[1:], density[1:], label=label, linewidth=1)
    floors.append(np.percentile(density[1:], 1))
  # A resampled recording has nothing above its original Nyquist; don't let that set the scale.
  axes.set_ylim(bottom=max(min(floors), 1e-12 * axes.get_ylim()[1]) / 3)
  for fmin, fmax in bands:
    for edge in (fmin, fmax):
      if edge > 0:
        axes.axvline(edge, color="0.4", linestyle="--", linewidth=0.8)
  axes.set_xlabel("frequency (Hz)")
  axes.set_ylabel("PSD (1/Hz; colors have unit variance)")
  band_text = ", ".join(f"{fmin:g}–{fmax:g} Hz" for fmin, fmax in bands)
  axes.set_title(f"Welch PSD of the noises at {sample_rate} Hz (dashed: bands {band_text})",
                 fontsize=9)
  axes.grid(True, which="both", alpha=0.3)
  axes.legend(fontsize=8)
  figure.tight_layout()
  with atomic_output(path) as temporary:
    figure.savefig(temporary, format="png", dpi=120)
  plt.close(figure)
  return pathlib.Path(path)


def write_noise_report(out_dir, sample_rate: int, bands, seconds: float = 5.0, seed: int = 0,
                       noise_files=(), generator: str = "psd") -> dict:
  """Writes ``noise_psd.png`` and ``noise_power.csv`` for the five colors plus ``noise_files``.

  The colors are drawn from ``jax.random.key(seed)`` exactly as ``noise_by_name`` draws them
  (the same realisations ``python -m jaxnoise.noise mix --seed --generator`` uses at that rate and
  length), shaped by ``generator`` (``jaxnoise.noise.colored.GENERATORS``).

  Returns:
    ``{'plot': path, 'csv': path, 'rows': rows}``.
  """
  if not sample_rate > 0:
    raise ConfigError(f"--sample-rate must be a positive number of Hz, got {sample_rate}")
  if not (math.isfinite(seconds) and seconds > 0):
    raise ConfigError(f"--seconds must be a positive finite duration, got {seconds}")
  if not bands:
    raise ConfigError("give at least one band (fmin, fmax)")
  bands = [validate_band(band, sample_rate) for band in bands]
  num_samples = int(round(seconds * sample_rate))
  names = list(COLORS) + [str(path) for path in noise_files]
  noises = make_noises(names, jax.random.key(seed), num_samples, sample_rate, generator)
  sources = {noise_label(name): (f"color ({generator})" if name in COLORS else name)
             for name in names}
  rows = nominal_noise_power(noises, sources, sample_rate, bands)
  out_dir = pathlib.Path(out_dir)
  return {"plot": plot_noise_psd(out_dir / PLOT_NAME, noises, sample_rate, bands),
          "csv": write_csv(out_dir / CSV_NAME, rows), "rows": rows}
