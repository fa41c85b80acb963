"""Noise command line: noisy copies of audio files, and the noise report.

  python -m jaxnoise.noise mix --noise pink --snr 10 --snr 0 --band 50 11025 --out noisy/ clips/
  python -m jaxnoise.noise report --sample-rate 44100 --band 50 11025 --out report/

``--generator study`` shapes the colors with the study's MATLAB routine instead of the default
f ** exponent shaping ("psd"); see ``jaxnoise.noise.colored``.

``mix`` writes, for every input file, noise and SNR, ``<stem>__<noise>__snr<+SNR>dB.wav``
(float32 WAV at the input's own rate; input folders are mirrored under --out). The input is read as
mono (mean over channels). The noise is generated or loaded at the input's rate and length; with one
--seed every input of the same rate and length gets the same noise realisation, as in the study,
which mixed one nominal realisation into all clips. The in-band SNR of every output equals the
target.
"""
import argparse
import pathlib
import sys

import jax
import numpy as np
import soundfile

from jaxnoise.audio.io import check_audio_header, list_audio_files, load_audio
from jaxnoise.cli import run_main
from jaxnoise.errors import AudioError, ConfigError
from jaxnoise.noise.colored import COLORS, GENERATORS, check_generator
from jaxnoise.noise.power import mix
from jaxnoise.noise.recorded import noise_labels
from jaxnoise.noise.report import atomic_output, make_noises, validate_band, write_noise_report

STUDY_BAND = (50.0, 11025.0)
GENERATOR_HELP = ("colored-noise shaping: psd (f ** exponent, DC zeroed) or study (the study's "
                  "MATLAB routine); default: %(default)s")


def snr_text(snr_db: float) -> str:
  """``10 -> '+10'``, ``-2.5 -> '-2.5'``, ``0 -> '+0'`` (no '-0')."""
  return f"{snr_db + 0.0:+g}"


def output_name(stem: str, noise: str, snr_db: float) -> str:
  return f"{stem}__{noise}__snr{snr_text(snr_db)}dB.wav"


def collect_inputs(paths) -> list[tuple[pathlib.Path, pathlib.Path]]:
  """``[(file, folder under --out)]``: a folder's audio files keep their sub-folders."""
  inputs = []
  for entry in map(pathlib.Path, paths):
    if entry.is_dir():
      inputs.extend((file, file.parent.relative_to(entry)) for file in list_audio_files([entry]))
    else:
      inputs.extend((file, pathlib.Path()) for file in list_audio_files([entry]))
  return inputs


def mix_files(paths, noise_names, snrs_db, band, out_dir, seed=0, generator="psd",
              skip_bad_files=False) -> dict:
  """Writes the noisy copies; returns ``{'written': [paths], 'silent': [input files], 'skipped':
  [input files]}``. An unreadable input (or a truncated WAV) stops everything before any output
  is written, or with ``skip_bad_files`` is named on stderr and left out."""
  if not snrs_db:
    raise ConfigError("give at least one --snr")
  if not all(np.isfinite(snrs_db)):
    raise ConfigError(f"SNRs must be finite numbers of dB, got {list(snrs_db)}")
  if len(set(snrs_db)) != len(snrs_db):
    raise ConfigError(f"an SNR is given twice: {list(snrs_db)}")
  labels = noise_labels(noise_names)
  check_generator(generator)
  out_dir = pathlib.Path(out_dir)
  inputs, skipped = [], []
  for file, folder in collect_inputs(paths):
    try:
      check_audio_header(file)
    except AudioError as error:
      if not skip_bad_files:
        raise
      print(f"warning: skipped {error}", file=sys.stderr)
      skipped.append(file)
      continue
    inputs.append((file, folder))
  destinations = {}
  for file, folder in inputs:
    for noise in labels:
      for snr in snrs_db:
        target = out_dir / folder / output_name(file.stem, noise, snr)
        if target in destinations:
          raise ConfigError(f"{file} and {destinations[target]} would both write {target}; "
                            "give them different names or folders")
        destinations[target] = file

  # Every input is read and checked before anything is written, so that a bad file anywhere
  # leaves no partial set of outputs behind (each is decoded again when its turn comes).
  for file, _ in inputs:
    rate = load_audio(file)[1]
    validate_band(band, rate, what=f"{file} ({rate} Hz)")

  key = jax.random.key(seed)
  noise_cache = {}
  written, silent = [], []
  for file, folder in inputs:
    clip, rate = load_audio(file)
    fmin, fmax = validate_band(band, rate, what=f"{file} ({rate} Hz)")
    shape_key = (rate, clip.shape[0])
    if shape_key not in noise_cache:
      noise_cache[shape_key] = make_noises(noise_names, key, clip.shape[0], rate, generator)
    noises = noise_cache[shape_key]
    result = mix(clip[None], np.stack(list(noises.values())), np.asarray(snrs_db, np.float32),
                 rate, (fmin, fmax))
    silent_noises = [label for label, flag in zip(noises, np.asarray(result.silent_noises)) if flag]
    if silent_noises:
      raise AudioError(f"noise {', '.join(silent_noises)} has no power in the band ({fmin:g}, "
                       f"{fmax:g}) Hz at {rate} Hz, so no gain can set an SNR with it")
    if bool(result.silent_clips[0]):
      silent.append(file)
      print(f"warning: {file} has no power in the band ({fmin:g}, {fmax:g}) Hz (P_x = 0): noise "
            "gain 0, its noisy copies equal the input", file=sys.stderr)
    noisy = np.asarray(result.noisy[0])
    for noise_index, label in enumerate(noises):
      for snr_index, snr in enumerate(snrs_db):
        target = out_dir / folder / output_name(file.stem, label, snr)
        with atomic_output(target) as temporary:
          soundfile.write(temporary, noisy[noise_index, snr_index], rate, subtype="FLOAT",
                          format="WAV")
        written.append(target)
    print(f"{file}: {rate} Hz, P_x = {float(result.clip_powers[0]):.4g}, "
          f"{len(noises) * len(snrs_db)} noisy copies")
  return {"written": written, "silent": silent, "skipped": skipped}


def parse_args(argv):
  parser = argparse.ArgumentParser(prog="python -m jaxnoise.noise", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  commands = parser.add_subparsers(dest="command", required=True)

  mixer = commands.add_parser("mix", help="write noisy copies of audio files")
  mixer.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR")
  mixer.add_argument("--noise", action="append", required=True,
                     help=f"{'|'.join(COLORS)}|FILE (repeat for several)")
  mixer.add_argument("--snr", action="append", type=float, required=True,
                     help="target in-band SNR in dB (repeat for several)")
  mixer.add_argument("--band", nargs=2, type=float, default=STUDY_BAND, metavar=("FMIN", "FMAX"),
                     help="band in Hz in which the SNR is measured (default: %(default)s)")
  mixer.add_argument("--seed", type=int, default=0)
  mixer.add_argument("--generator", choices=GENERATORS, default="psd", help=GENERATOR_HELP)
  mixer.add_argument("--out", required=True, help="output folder")
  mixer.add_argument("--skip-bad-files", action="store_true",
                     help="skip unreadable or truncated inputs (named on stderr) instead of "
                          "stopping before any output")

  report = commands.add_parser("report", help="PSD plot and nominal in-band power of the noises")
  report.add_argument("--sample-rate", type=int, required=True)
  report.add_argument("--band", nargs=2, type=float, action="append", metavar=("FMIN", "FMAX"),
                      help="band in Hz (repeat for several; default: 50 11025)")
  report.add_argument("--seconds", type=float, default=5.0)
  report.add_argument("--seed", type=int, default=0)
  report.add_argument("--generator", choices=GENERATORS, default="psd", help=GENERATOR_HELP)
  report.add_argument("--noise-file", action="append", default=[],
                      help="a recorded noise to include (repeat for several)")
  report.add_argument("--out", required=True, help="output folder")
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  if args.command == "mix":
    summary = mix_files(args.inputs, args.noise, args.snr, args.band, args.out, seed=args.seed,
                        generator=args.generator, skip_bad_files=args.skip_bad_files)
    print(f"wrote {len(summary['written'])} files to {args.out}")
    if summary["skipped"]:
      print(f"warning: {len(summary['skipped'])} unreadable input(s) skipped", file=sys.stderr)
    if summary["silent"]:
      print(f"warning: {len(summary['silent'])} silent input(s) got no noise", file=sys.stderr)
  else:
    report = write_noise_report(args.out, args.sample_rate, args.band or [STUDY_BAND],
                                seconds=args.seconds, seed=args.seed, noise_files=args.noise_file,
                                generator=args.generator)
    for row in report["rows"]:
      print(f"{row['noise']:>10}  {row['fmin']:g}-{row['fmax']:g} Hz  "
            f"P = {row['band_power']:.6g}  ({row['band_power_db']:.2f} dB)")
    print(f"wrote {report['plot']} and {report['csv']}")
  return 0


if __name__ == "__main__":
  sys.exit(run_main(main))
