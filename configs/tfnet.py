"""TFNet trained from scratch on the study's 19 ESC-50 classes, five fold rotations.

  python launch.py --config=configs/tfnet.py --workdir=runs/tfnet --config.data.root=ESC-50
  python launch.py --config=configs/tfnet.py:upstream ...   # the TFNet repository's recipe

The same recipes as CNN10 (configs/cnn10.py, whose table says where the default follows the study
and where the repository): the TFNet repository's util_esc50/main.py trains both with Adam
(amsgrad, lr 1e-4, x0.9 every 100 iterations) for 4,500 iterations at batch 64; the default keeps
the study's time-frequency masking only, ``:upstream`` cycles mixup, plain and masked batches.
"""
from configs import cnn10


def get_config(variant: str = ""):
  config = cnn10.get_config(variant)
  config.model.arch = "tfnet"
  config.model.name = "TFNet"
  return config
