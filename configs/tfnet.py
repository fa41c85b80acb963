"""TFNet trained from scratch on the study's 19 ESC-50 classes, five fold rotations.

  python launch.py --config=configs/tfnet.py --workdir=runs/tfnet --config.data.root=ESC-50

The same recipe as CNN10 (configs/cnn10.py): the TFNet repository's util_esc50/main.py trains both
with Adam (amsgrad, lr 1e-4, x0.9 every 100 iterations) for 4,500 iterations, cycling mixup, plain
and time-frequency-masked batches; batch 64 as the study.
"""
from configs import cnn10


def get_config():
  config = cnn10.get_config()
  config.model.arch = "tfnet"
  config.model.name = "TFNet"
  return config
