"""The 'report' mode: figures, tables and a summary page (Markdown and HTML) in ``workdir/report``.

  write_report(config, workdir)   # what `launch.py` calls for the 'report' mode

It reads the sweep's ``results.csv``, ``accuracy.csv`` and ``run.json`` (plus the ``accuracy.csv``
and ``results.csv`` of ``config.report.compare_workdirs``, so several models share one plot), and
the model and noises of the config for the complexity, noise-power and spectrogram parts.
"""
import html
import json
import logging
import pathlib

import jax
import numpy as np

from jaxnoise import config_checks
from jaxnoise import noise as noise_lib
from jaxnoise.data import clips as clip_loading
from jaxnoise.errors import ConfigError
from jaxnoise.report import metrics, plots, tables
from jaxnoise.runtime import files
from jaxnoise.sweep import engine as engine_lib
from jaxnoise.sweep import model as model_lib
from jaxnoise.data import noises as sweep_noises
from jaxnoise.sweep import run as sweep_run
from jaxnoise.sweep import store

REPORT_DIR = "report"


def read_runs(workdir, compare_workdirs):
  """Accuracy rows and results columns of this run and the runs it is compared with, and the
  models of this run."""
  accuracy_rows = store.read_accuracy(workdir)
  columns = store.read_results(workdir)
  own_models = sorted(set(columns["model"].tolist()))
  for other in compare_workdirs:
    accuracy_rows += store.read_accuracy(other)
    extra = store.read_results(other)
    columns = {name: np.concatenate([columns[name], extra[name]]) for name in columns}
  return accuracy_rows, columns, own_models


def gain_baseline(report_config, accuracy_rows):
  """The model the robustness gain table is computed against, or None without compared runs:
  ``config.report.baseline_model``, else the one model of the first compared workdir."""
  compare = tuple(report_config.compare_workdirs)
  if not compare:
    return None
  models = sorted({row["model"] for row in accuracy_rows})
  chosen = str(report_config.get("baseline_model", "") or "")
  if not chosen:
    first = sorted({row["model"] for row in store.read_accuracy(compare[0])})
    if len(first) != 1:
      raise ConfigError(f"{compare[0]} holds the models {first}; name the baseline of the gain "
                        "table with config.report.baseline_model")
    chosen = first[0]
  if chosen not in models:
    raise ConfigError(f"config.report.baseline_model={chosen!r} is none of the compared models "
                      f"{models}")
  return chosen


def nearest_snr(wanted: float, available) -> str:
  """The grid SNR (as its cell text) closest to ``wanted``."""
  return min(available, key=lambda text: (abs(float(text) - wanted), float(text)))


def confusion_figures(columns, model, snr_wanted, out_dir) -> list[tuple[str, pathlib.Path]]:
  """Confusion matrices of ``model``: clean, and every noise at the grid SNR nearest each wanted."""
  mine = columns["model"] == model
  # The classes decided among: the tested ones, and any other a model decides for (an inference
  # set tests some of a model's classes, and every one of them can be predicted).
  name_of = {**dict(zip(columns["predicted"][mine].tolist(),
                        columns["predicted_name"][mine].tolist())),
             **dict(zip(columns["target"][mine].tolist(), columns["target_name"][mine].tolist()))}
  targets = sorted(name_of)
  names = [name_of[target] for target in targets]
  figures = []
  groups = metrics.group_rows({name: values[mine] for name, values in columns.items()},
                              ("noise", "snr_db"))
  available = sorted({snr for (_, snr) in groups if snr != ""}, key=float)
  chosen = [] if not available else sorted({nearest_snr(float(s), available) for s in snr_wanted},
                                           key=float)
  for (noise, snr), rows in groups.items():
    if noise != metrics.CLEAN and snr not in chosen:
      continue
    subset_targets = columns["target"][mine][rows]
    subset_predicted = columns["predicted"][mine][rows]
    matrix = metrics.confusion_matrix(subset_targets, subset_predicted, targets)
    label = "clean" if noise == metrics.CLEAN else f"{noise} at {snr} dB"
    title = (f"{model}: {label} (accuracy {metrics.accuracy(subset_targets, subset_predicted):.2f},"
             f" collapse {metrics.collapse_rate(subset_predicted):.2f})")
    suffix = f"_{snr}dB" if snr else ""
    path = out_dir / "confusion" / f"{plots.slug(model)}_{plots.slug(noise)}{suffix}.png"
    figures.append((label, plots.plot_confusion(matrix, targets, names, title, path)))
  return figures


def spectrogram_figure(swept, inputs, config, record, out_dir) -> pathlib.Path:
  """The model's log-mel of the clip ``record``, clean and with each nominal noise at the report
  SNR."""
  spec = swept.spec
  file_name = record.filename
  clip = clip_loading.load_set([record.path], spec, config.data.get("clip_policy", "first"),
                               config.data.cache_dir or None,
                               convert=bool(config.data.convert_audio))[0]
  length = clip.shape[0]
  snr = float(config.report.spectrogram_snr)
  noises = np.stack([sweep_noises.nominal_noise(noise, 0, int(config.seed), spec.sample_rate,
                                                length) for noise in inputs.noise_types])
  mixed = noise_lib.mix(clip[None], noises, [snr], spec.sample_rate, spec.band).noisy[0, :, 0]
  waveforms = np.concatenate([clip[None], np.asarray(mixed)])
  features = np.asarray(spec.features(engine_lib.model_input(spec, waveforms)))
  features = features.reshape(features.shape[0], features.shape[1], -1)
  titles = ["clean"] + [f"{noise.name} at {snr:g} dB" for noise in inputs.noise_types]
  suptitle = (f"{swept.name} frontend features of {file_name} ({record.category}); SNR in the "
              f"band {spec.band[0]:g}-{spec.band[1]:g} Hz")
  return plots.plot_spectrograms(features, titles, suptitle,
                                 out_dir / f"spectrograms_{plots.slug(swept.name)}.png")


def spectrogram_record(setting, tested):
  """The swept clip ``config.report.spectrogram_clip`` names: a file name, or an ESC-50 target
  whose first clip (by fold and file name) is taken; the first clip when that class was not swept.

  Raises:
    ConfigError: a file name that is not among the swept clips.
  """
  setting = str(setting).strip()
  if setting.isdigit():
    of_class = [record for record in tested if record.target == int(setting)]
    if not of_class:
      logging.info("config.report.spectrogram_clip=%s: no swept clip of that class; showing %s",
                   setting, tested[0].filename)
    return (of_class or tested)[0]
  for record in tested:
    if record.filename == setting:
      return record
  raise ConfigError(f"config.report.spectrogram_clip={setting!r} is not a swept clip; expected an "
                    f"ESC-50 target or a file name such as {tested[0].filename!r}")


def skipped_text(skipped) -> str:
  """The report's count of the unreadable files a sweep left out (config.data.skip_bad_files)."""
  if not skipped:
    return ""
  names = ", ".join(entry["file"] for entry in skipped[:5])
  return (f" {len(skipped)} unreadable file(s) skipped (config.data.skip_bad_files; listed in "
          f"run.json): {names}{', ...' if len(skipped) > 5 else ''}.")


def html_table(columns, rows) -> str:
  head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
  body = "".join("<tr>" + "".join(f"<td>{html.escape(tables.format_value(row.get(c, '')))}</td>"
                                  for c in columns) + "</tr>" for row in rows)
  return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(sections, title: str) -> tuple[str, str]:
  """Markdown and HTML of ``sections``: (heading, text, table (columns, rows) or None, images)."""
  markdown = [f"# {title}\n"]
  page = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
          "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:"
          "collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
          "img{max-width:100%}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
  for heading, text, table, images in sections:
    markdown.append(f"## {heading}\n")
    page.append(f"<h2>{html.escape(heading)}</h2>")
    if text:
      markdown.append(text + "\n")
      page.append(f"<p>{html.escape(text)}</p>")
    if table:
      markdown.append(tables.markdown(*table))
      page.append(html_table(*table))
    for caption, link in images:
      markdown.append(f"![{caption}]({link})\n")
      page.append(f"<figure><a href='{html.escape(link)}'><img src='{html.escape(link)}' "
                  f"alt='{html.escape(caption)}'></a><figcaption>{html.escape(caption)}"
                  "</figcaption></figure>")
  page.append("</body></html>")
  return "\n".join(markdown), "\n".join(page)


def check_settings(config):
  """``config.report``'s values, and that the runs to compare with hold a finished sweep."""
  config_checks.check_report_config(config.report)
  for other in tuple(config.report.compare_workdirs):
    path = pathlib.Path(other).expanduser() / store.ACCURACY_FILE
    if not path.is_file():
      raise ConfigError(f"config.report.compare_workdirs: {path} does not exist; list workdirs "
                        "of finished sweeps")


def write_report(config, workdir) -> dict:
  """Writes every figure and table and the summary page; returns their paths ({} on every
  process but 0 of a multi-host run, which has nothing to add)."""
  if jax.process_index() != 0:
    return {}
  check_settings(config)
  workdir = pathlib.Path(workdir)
  out_dir = workdir / REPORT_DIR
  files.remove_stale_temporaries(out_dir)
  accuracy_rows, columns, own_models = read_runs(workdir, tuple(config.report.compare_workdirs))
  run_info = json.loads((workdir / store.RUN_FILE).read_text(encoding="utf-8"))
  inputs = sweep_run.resolve_inputs(config)
  models = {}
  for swept in model_lib.load_models(config, workdir):
    models.setdefault(swept.name, swept)
  missing = [name for name in own_models if name not in models]
  if missing:
    raise ConfigError(f"{workdir}/results.csv holds model(s) {missing}, but the config loads "
                      f"{sorted(models)}; report with the config the sweep ran with")
  written = {"accuracy": plots.plot_accuracy_vs_snr(accuracy_rows, out_dir)}
  robustness = metrics.robustness_table(accuracy_rows, columns)
  snr_columns = sorted({key for row in robustness for key in row if key.startswith("collapse_at")},
                       key=lambda key: float(key[len("collapse_at_"):-2]))
  robustness_columns = list(tables.ROBUSTNESS_COLUMNS) + snr_columns
  baseline = gain_baseline(config.report, accuracy_rows)
  gains = [] if baseline is None else metrics.gain_table(robustness, baseline)
  pivot = tables.accuracy_pivot(accuracy_rows)
  complexity = [tables.complexity_row(name, swept.spec, swept.variables)
                for name, swept in models.items()]
  noise_power = tables.noise_power_rows(inputs.noise_types, list(models.values()), int(config.seed))
  table_files = {name: out_dir / f"{name}.csv"
                 for name in ("robustness", "complexity", "noise_power", "accuracy_by_snr")}
  files.atomic_write_csv(table_files["robustness"], robustness_columns, robustness)
  files.atomic_write_csv(table_files["complexity"], tables.COMPLEXITY_COLUMNS, complexity)
  files.atomic_write_csv(table_files["noise_power"], tables.NOISE_POWER_COLUMNS, noise_power)
  files.atomic_write_csv(table_files["accuracy_by_snr"], *pivot)
  inference_vs_test = tables.inference_vs_test_rows(
      run_info.get("models", []), model_lib.read_fold_results(workdir),
      store.read_accuracy(workdir), run_info.get("config", {}).get("sweep", {}).get(
          "inference_root", ""))
  if inference_vs_test:
    table_files["inference_vs_test"] = out_dir / "inference_vs_test.csv"
    files.atomic_write_csv(table_files["inference_vs_test"], tables.INFERENCE_VS_TEST_COLUMNS,
                           inference_vs_test)
  study_noise_power = tables.study_noise_power_rows(inputs.noise_types, int(config.seed))
  table_files["noise_power_study"] = out_dir / "noise_power_study.csv"
  files.atomic_write_csv(table_files["noise_power_study"], tables.study_noise_power_columns(),
                         study_noise_power)
  fold_curves = {path: files.read_csv(path) for path in sorted(workdir.glob("fold*/curves.csv"))}
  training_curves = tables.training_curve_rows(fold_curves)
  if training_curves:
    table_files["training_curves"] = out_dir / "training_curves.csv"
    files.atomic_write_csv(table_files["training_curves"], tables.TRAINING_CURVE_COLUMNS,
                           training_curves)
    written["training_curves"] = plots.plot_training_curves(
        training_curves, f"{', '.join(own_models)}, {len(fold_curves)} fold(s)",
        out_dir / "training_curves.png")
  gain_sections = []
  if baseline is not None:
    table_files["robustness_gain"] = out_dir / "robustness_gain.csv"
    files.atomic_write_csv(table_files["robustness_gain"], metrics.GAIN_COLUMNS, gains)
    written["gain"] = plots.plot_gain(accuracy_rows, baseline, out_dir / "robustness_gain.png")
  confusions, spectrograms = [], []
  swept_files = set(columns["file"][np.isin(columns["model"], own_models)].tolist())
  spectrogram_clip = spectrogram_record(
      config.report.spectrogram_clip,
      [record for record in inputs.tested if record.filename in swept_files] or inputs.tested)
  for name in own_models:
    confusions += confusion_figures(columns, name, tuple(config.report.confusion_snrs), out_dir)
    spectrograms.append((f"{name}: {spectrogram_clip.filename}",
                         spectrogram_figure(models[name], inputs, config, spectrogram_clip,
                                            out_dir)))
  written["confusion"] = [path for _, path in confusions]
  written["spectrograms"] = [path for _, path in spectrograms]

  def link(path):
    return str(pathlib.Path(path).relative_to(out_dir))

  settings = run_info.get("config", {}).get("sweep", {})
  summary = (f"{len(set(columns['file']))} clips of {len(inputs.label_names)} classes, noises "
             f"{', '.join(n.name for n in inputs.noise_types)}, SNRs {settings.get('snrs')} dB, "
             f"{settings.get('realisations')} realisation(s) per noise"
             f"{' (fresh per clip)' if settings.get('fresh_noise_per_clip') else ''}; "
             f"{run_info.get('devices', {}).get('count')} device(s), precision "
             f"{run_info.get('precision', 'highest')}, sweep time "
             f"{run_info.get('timing', {}).get('seconds', float('nan')):.1f} s."
             f"{skipped_text(run_info.get('skipped_files', []))}")
  robustness_text = ("area: mean accuracy over the SNR range (trapezoid); half-accuracy SNR: where "
                     "accuracy falls to half of clean (interpolated); collapse: share of predictions"
                     " on the most predicted class at an SNR (1.0 = every clip gets one class).")
  if baseline is not None:
    gain_sections.append((
        f"Robustness gain over {baseline}",
        "Each model minus the baseline, per noise: clean accuracy, area; the half-accuracy SNR "
        "shift (negative: half of clean accuracy is kept down to a lower SNR); collapse at the "
        "lowest SNR.",
        (metrics.GAIN_COLUMNS, gains), [("both curves per noise", link(written["gain"]))]))
  sections = [
      ("Run", summary, None, []),
      ("Accuracy vs SNR", "One panel per noise; dashed lines: each model's clean accuracy.",
       None, [("all noises", link(written["accuracy"]["overview"]))]),
      ("Accuracy", "Per model and noise; columns: SNR in dB.", pivot, []),
      ("Robustness", robustness_text, (robustness_columns, robustness), []),
      *([("Test accuracy vs clean accuracy of the swept set (the study's Table 4.5)",
          "test_accuracy: the swept fold model(s) on their test fold(s) at the end of training "
          "(clip-weighted over folds); clean_accuracy: the same model(s) on the swept set without "
          "noise; accuracy_loss_percent: 100 (test - clean) / test.",
          (tables.INFERENCE_VS_TEST_COLUMNS, inference_vs_test), [])] if inference_vs_test
        else []),
      *gain_sections,
      ("Model complexity", "FLOPs per clip from XLA's cost analysis (frontend + network, batch 1).",
       (tables.COMPLEXITY_COLUMNS, complexity), []),
      ("Nominal noise power per model band", "In-band power of the nominal realisation of each "
       "noise (colors have unit variance), as every gain alpha divides by it.",
       (tables.NOISE_POWER_COLUMNS, noise_power), []),
      ("Nominal noise power at 44.1 kHz (the study's Table 4.7)", "In-band power in mW of each "
       "noise's nominal realisation drawn or loaded at 44.1 kHz, 5 s, in the band of each of the "
       "study's models (its Table 4.8), as the study mixed; the table above is what this run "
       "mixed, at each model's own rate.",
       (tables.study_noise_power_columns(), [{**row, **{k: f"{v:.5g}" for k, v in row.items()
                                                        if k.endswith("(mW)")}}
                                             for row in study_noise_power]), []),
      *([("Training curves", "Loss and accuracy against iteration, the mean over the trained "
          "folds with the lowest-to-highest fold shaded (the study's Figs 4.3-4.6); test points "
          "every config.train.eval_every steps and at the end.", None,
          [("training curves", link(written["training_curves"]))])]
        if training_curves else []),
      ("Spectrograms", f"Model frontend features, clean and at {config.report.spectrogram_snr} dB.",
       None, [(caption, link(path)) for caption, path in spectrograms]),
      ("Confusion matrices", "Rows: true class; columns: predicted class (ESC-50 id and name).",
       None, [(caption, link(path)) for caption, path in confusions]),
      ("Accuracy vs SNR per noise", "", None,
       [(noise, link(path)) for noise, path in written["accuracy"].items() if noise != "overview"]),
  ]
  markdown_text, html_text = render(sections, f"jaxnoise report: {', '.join(own_models)}")
  files.atomic_write_text(out_dir / "index.md", markdown_text)
  files.atomic_write_text(out_dir / "index.html", html_text)
  written.update({"markdown": out_dir / "index.md", "html": out_dir / "index.html",
                  "tables": table_files})
  logging.info("report written to %s", out_dir)
  return written
