"""CNN10 trained from scratch on the study's 19 ESC-50 classes, five fold rotations.

  python launch.py --config=configs/cnn10.py --workdir=runs/cnn10 --config.data.root=ESC-50
  python launch.py --config=configs/cnn10.py:upstream ...   # the TFNet repository's recipe

Training recipe of the TFNet authors' repository (Hadryan/TFNet-for-Environmental-Sound-
Classification, util_esc50/main.py), which the study used for CNN10 and TFNet, except where the
study says otherwise (its Table 4.3 and "General Training Details"):

| setting | default (study) | :upstream | source of the default |
|---|---|---|---|
| optimizer | Adam, amsgrad, lr 1e-4, x0.9 every 100 iterations | same | upstream |
| batch, length | 64, 4,500 iterations | 64, 4,500 | study (repository runme.sh: 32) |
| augmentation | time-frequency masking on every 3rd batch, no mixup | cycle mixup (alpha 0.2), plain, masking | study (Table 4.3: masking only); upstream's mixup batches become plain |
| masks | 2 frequency + 2 time masks, each narrower than 4 bins, set to 0 | same | upstream |
| colored noise | the study's MATLAB generator | f ** exponent ("psd") | study |
| swept model | the best fold ("best") | every fold on its own test fold | study (section 4.2) |

Upstream draws one mixup weight per batch from Beta(0.2, 0.2), rejecting draws in [0.35, 0.65],
where this loop draws one per clip and keeps max(w, 1 - w) (both mix the two labels' losses by the
same weight).
"""
from configs import base


def get_config(variant: str = ""):
  words = base.variant_words(variant, base.RECIPES)
  config = base.get_config()
  config.model.arch = "cnn10"
  config.model.name = "CNN10"
  config.train.batch_size = 64
  # On a CPU, two XLA devices with half the batch each: XLA:CPU runs a device's element-wise work on
  # one thread, so the training step ran 1.23x as fast on the 2-core CPU (benchmarks/train.py).
  config.train.cpu_devices = 2
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
  # Test points of the training curves (the study's Figs 4.3-4.6): every 100 iterations.
  config.train.eval_every = 100
  if "upstream" not in words:
    config.train.augment_cycle = ("none", "none", "mask")
    config.train.mixup_alpha = 0.0
    base.study_protocol(config)
  return config
