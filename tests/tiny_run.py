"""A tiny train + sweep job for the kill/resume and determinism tests.

Noisy tones of three ESC-50 classes in the dataset's native layout, and a config file that
launch.py reads like any in configs/: a CNN10 trained from scratch for a few steps on folds 2 and 3
(with mixup and masking, so every random draw of training is exercised), then swept on fold 1 with
white and pink noise, several realisations, a fresh noise draw per clip and the logits saved.
"""
import importlib.util
import pathlib

import numpy as np

from conftest import write_esc50
from jaxnoise.data import esc50

TONES = {20: 300.0, 21: 1200.0, 22: 3000.0}  # ESC-50 target -> tone frequency (Hz)

CONFIG_TEMPLATE = '''"""Tiny train + sweep job of the test suite (written by tests/tiny_run.py)."""
from configs import base


def get_config():
  config = base.get_config()
  config.seed = {seed}
  config.modes = ("train", "sweep")
  config.model.arch = "cnn10"
  config.data.root = {root!r}
  config.data.cache_dir = {cache_dir!r}
  config.cache_dir = {cache_dir!r} + "/xla"
  config.data.classes = "crying_baby,sneezing,clapping"
  config.data.test_folds = (1,)
  config.train.batch_size = 4
  config.train.steps = {steps}
  config.train.log_every = 1
  config.train.checkpoint_every = 2
  config.train.augment_cycle = ("mixup", "none", "mask")
  config.train.mixup_alpha = 0.2
  config.sweep.noises = ("white", "pink")
  config.sweep.snrs = (-5, 5)
  config.sweep.realisations = 3
  config.sweep.fresh_noise_per_clip = True
  config.sweep.save_logits = True
  return config
'''


def write_tone_dataset(root, clips_per_class_and_fold: int = 2, folds=(1, 2, 3)) -> pathlib.Path:
  """Tones plus white noise (seeded), 5 s at 44.1 kHz, in ESC-50's layout under ``root``."""
  rng = np.random.default_rng(0)
  t = np.arange(esc50.CLIP_SAMPLES) / esc50.SAMPLE_RATE
  clips = []
  for target, frequency in TONES.items():
    for fold in folds:
      for index in range(clips_per_class_and_fold):
        waveform = 0.3 * np.sin(2 * np.pi * frequency * t) + 0.05 * rng.standard_normal(t.size)
        clips.append((fold, target, f"{target}{fold}{index:02d}", waveform))
  return write_esc50(root, clips)


def write_config(path, data_root, cache_dir, *, steps: int = 12, seed: int = 0) -> pathlib.Path:
  path = pathlib.Path(path)
  path.write_text(CONFIG_TEMPLATE.format(root=str(data_root), cache_dir=str(cache_dir),
                                         steps=steps, seed=seed))
  return path


def load_config(path):
  """The ConfigDict of a config file, as ``--config=path`` gives it to launch.py."""
  spec = importlib.util.spec_from_file_location(f"tiny_config_{abs(hash(str(path)))}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()
