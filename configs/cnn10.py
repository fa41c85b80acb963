"""CNN10 trained from scratch on the study's 19 ESC-50 classes, five fold rotations.

  python launch.py --config=configs/cnn10.py --workdir=runs/cnn10 --config.data.root=ESC-50

Training recipe of the TFNet authors' repository (Hadryan/TFNet-for-Environmental-Sound-
Classification, util_esc50/main.py), which the study used for CNN10 and TFNet:
  * Adam with amsgrad, learning rate 1e-4, betas (0.9, 0.999), eps 1e-8, no weight decay;
  * the learning rate multiplied by 0.9 every 100 iterations;
  * 4,500 iterations from scratch;
  * batches cycle through mixup (alpha 0.2), plain, and SpecAugment time-frequency masking
    (2 frequency and 2 time masks, each narrower than 4 bins, masked bins set to 0).
Differences: batch 64 as the study (the repository's runme.sh uses 32); upstream draws one mixup
weight per batch from Beta(0.2, 0.2), rejecting draws in [0.35, 0.65], where this loop draws one
per clip and keeps max(w, 1 - w) (both mix the two labels' losses by the same weight).
"""
from configs import base


def get_config():
  config = base.get_config()
  config.model.arch = "cnn10"
  config.model.name = "CNN10"
  config.train.batch_size = 64
  config.train.steps = 4500
  config.train.optimizer = "amsgrad"
  config.train.learning_rate = 1e-4
  config.train.schedule = "step_decay"
  config.train.lr_decay_every = 100
  config.train.lr_decay_rate = 0.9
  config.train.augment_cycle = ("mixup", "none", "mask")
  config.train.mixup_alpha = 0.2
  config.train.time_masks = 2
  config.train.time_mask_width = 4
  config.train.freq_masks = 2
  config.train.freq_mask_width = 4
  config.train.checkpoint_every = 500
  config.train.log_every = 100
  return config
