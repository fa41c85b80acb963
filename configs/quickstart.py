"""Quickstart: no training. An AudioSet-pretrained model classifies the 19 classes zero-shot under noise.

  python launch.py --config=configs/quickstart.py --workdir=runs/quickstart

The default model is EfficientAT's real ``mn04_as`` (AudioSet, 0.98 M parameters), read from
``../shared/golden/mn/mn04_as_mAP_432.pt`` when that folder is beside the repository (or under
``$JAXNOISE_SHARED``), else from ``~/.cache/jaxnoise/checkpoints/mn04_as_mAP_432.pt`` (downloaded
there from EfficientAT's releases when missing and online). Any converted mn / HTS-AT / PANNs / BEATs directory or upstream checkpoint works:
  --config.model.checkpoint=PATH [--config.model.arch=htsat|panns_cnn10|mn|beats] [--config.model.name=...]
e.g. BEATs' AudioSet release: --config.model.arch=beats
  --config.model.checkpoint=PATH/BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt
Its 527 AudioSet scores become ESC-50 class scores through jaxnoise.data.zero_shot (each ESC class
scores the max of its mapped AudioSet classes). Data: ``--config.data.root=DIR`` (ESC-50 layout);
by default ``../shared/data/esc50`` if present, else the cache (downloaded once when online).
"""
import os
import pathlib

from configs import base

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
# The reference material beside the repository ($JAXNOISE_SHARED elsewhere, as for the tests).
SHARED = pathlib.Path(os.environ.get("JAXNOISE_SHARED") or REPO_ROOT.parent / "shared")
CHECKPOINT_NAME = "mn04_as_mAP_432.pt"


def default_checkpoint(cache_dir: str) -> str:
  golden = SHARED / "golden" / "mn" / CHECKPOINT_NAME
  if golden.is_file():
    return str(golden)
  return str(pathlib.Path(cache_dir) / "checkpoints" / CHECKPOINT_NAME)


def get_config():
  config = base.get_config()
  config.modes = ("sweep", "report")
  config.model.arch = "mn"
  config.model.name = "mn04_as zero-shot"
  config.model.checkpoint = default_checkpoint(config.data.cache_dir)
  config.model.allow_head_mismatch = False  # the AudioSet head is what classifies
  if (SHARED / "data" / "esc50" / "meta" / "esc50.csv").is_file():
    config.data.root = str(SHARED / "data" / "esc50")
  # The shared ESC-50 copy has only the 20 tested classes; its noise folder has ESC-50 clips of
  # dog, rain, car_horn, engine and train for the default recorded noises.
  if (SHARED / "data" / "noise" / "esc50").is_dir():
    config.sweep.esc50_noise_dirs = (str(SHARED / "data" / "noise" / "esc50"),)
  return config
