"""Does training with noise make mn04_as more robust? Fine-tune it without and with augmentation.

  python launch.py --config=configs/robust.py:baseline --workdir=runs/robust_baseline
  python launch.py --config=configs/robust.py:augmented --workdir=runs/robust_augmented

Both variants fine-tune EfficientAT's ``mn04_as`` (AudioSet, a new 19-class head) on the shared
ESC-50 clips, sweep the result and write a report; ``:augmented`` trains with
``config.train.noise_augment`` and its report compares it with the baseline run in
``config.report.compare_workdirs`` (default ``runs/robust_baseline``, relative to where launch.py
runs): accuracy curves of both runs per noise, and the robustness gain table
(``report/robustness_gain.csv``).

Data: the shared copy holds one ESC-50 fold (fold 4, 160 clips of targets 20..39, plus 5 others),
so the clips are re-split into 5 seeded folds keeping clips of one source recording together
(``config.data.split_folds``); the model trains on folds 2..5 and is tested on fold 1. The split is
written to ``<workdir>/folds.csv``.

Noise pools, disjoint by construction (the leakage check refuses any shared recording):
- sweep: the five colors (each run's nominal realisation from config.seed) and ESC-50 dog, rain,
  car_horn, engine and train from ``../shared/data/noise/esc50``;
- training: white, pink and brown drawn fresh per clip and step from the training key, and the
  recordings the sweep never uses: ``whisp/`` wind, engine and horn, ``swch-audio-classification/``
  speech and music. Blue and violet noise and the ESC-50 recordings stay unseen in training.
"""
import pathlib

from configs import base, quickstart

VARIANTS = ("baseline", "augmented")


def get_config(variant: str = "baseline"):
  if variant not in VARIANTS:
    raise ValueError(f"configs/robust.py:{variant}: expected one of {', '.join(VARIANTS)}, e.g. "
                     "--config=configs/robust.py:augmented")
  shared = quickstart.SHARED
  config = base.get_config()
  config.seed = 0
  config.modes = ("train", "sweep", "report")
  config.model.arch = "mn"
  config.model.name = f"mn04_as {variant}"
  config.model.checkpoint = quickstart.default_checkpoint(config.data.cache_dir)
  config.model.allow_head_mismatch = True
  config.data.root = str(shared / "data" / "esc50")
  config.data.download = False
  config.data.split_folds = 5
  config.data.split_seed = 0
  config.data.test_folds = (1,)

  config.train.batch_size = 16
  config.train.steps = 120
  config.train.optimizer = "adam"
  config.train.learning_rate = 1e-3
  config.train.schedule = "constant"
  config.train.augment_cycle = ("none",)
  config.train.checkpoint_every = 40
  config.train.log_every = 10

  noise_dir = shared / "data" / "noise"
  augment = config.train.noise_augment
  augment.enabled = variant == "augmented"
  augment.probability = 0.5
  augment.snr_low = -10.0
  augment.snr_high = 20.0
  augment.noises = ("white", "pink", "brown",
                    f"wind={noise_dir / 'whisp' / 'wind.wav'}",
                    f"engine_field={noise_dir / 'whisp' / 'engine.wav'}",
                    f"horn_field={noise_dir / 'whisp' / 'horn.wav'}",
                    f"speech={noise_dir / 'swch-audio-classification' / 'speech.wav'}",
                    f"music={noise_dir / 'swch-audio-classification' / 'music.wav'}")

  config.sweep.esc50_noise_dirs = (str(noise_dir / "esc50"),)
  config.sweep.snrs = (-20, -10, -5, 0, 5, 10, 20)
  config.sweep.folds = (1,)
  config.report.confusion_snrs = (-10,)
  if variant == "augmented":
    config.report.compare_workdirs = (str(pathlib.Path("runs") / "robust_baseline"),)
  return config
