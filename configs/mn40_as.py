"""EfficientAT mn40_as_ext fine-tuned from its AudioSet weights with a new 19-class head.

  python launch.py --config=configs/mn40_as.py --workdir=runs/mn40_as --config.data.root=ESC-50 \
      --config.model.checkpoint=PATH/mn40_as_ext_mAP_487.pt

The checkpoint is EfficientAT's released AudioSet model (a GitHub release asset of
fschmid56/EfficientAT; a converted jaxnoise model directory works as well); its 527-class head is
replaced by a freshly initialised 19-class one. Recipe of EfficientAT's ex_esc50.py
(fschmid56/EfficientAT, commit 0d01f955): Adam, learning rate 6e-5, no weight decay; per epoch
an exponential warm-up over 10 epochs, then a linear decay from epoch 10 over 65 epochs to 0.01 of
the peak; mixup with alpha 0.3 on the log-mel input (per-clip weights max(w, 1 - w), losses of
both labels mixed); no time/frequency masking (freqm = timem = 0).
Differences: 50 epochs and batch 64 as the study (upstream: 80 epochs, batch 128), so the decay
ends at 0.41 of the peak; upstream's waveform augmentations (random roll, wave mixing, +-12 dB
gain) and random mel-band edges of its frontend are not applied by this loop.
"""
from configs import base


def get_config():
  config = base.get_config()
  config.model.arch = "mn"
  config.model.name = "mn40_as_ext"
  config.model.checkpoint = "checkpoints/mn40_as_ext_mAP_487.pt"
  config.model.allow_head_mismatch = True
  config.train.batch_size = 64
  config.train.epochs = 50
  config.train.optimizer = "adam"
  config.train.learning_rate = 6e-5
  config.train.weight_decay = 0.0
  config.train.schedule = "warmup_linear_down"
  config.train.warmup_epochs = 10
  config.train.rampdown_start_epoch = 10
  config.train.rampdown_epochs = 65
  config.train.final_lr_factor = 0.01
  config.train.augment_cycle = ("mixup",)
  config.train.mixup_alpha = 0.3
  config.train.checkpoint_every = 100
  config.train.log_every = 10
  return config
