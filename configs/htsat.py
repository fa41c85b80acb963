"""HTS-AT fine-tuned from its AudioSet weights with a new 19-class head.

  python launch.py --config=configs/htsat.py --workdir=runs/htsat --config.data.root=ESC-50 \
      --config.model.checkpoint=PATH/HTSAT_AudioSet_Saved_1.ckpt

The checkpoint is one of HTS-AT's released AudioSet models (RetroCirce/HTS-Audio-Transformer; a
converted jaxnoise model directory works as well); its 527-class token-semantic head is replaced by
a fresh 19-class one, trained with softmax cross-entropy (upstream's 'clip_ce' for ESC-50).
Recipe of HTS-AT's esc_config.py and sed_model.py (configure_optimizers, training_step): AdamW,
learning rate 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.05 on every parameter; 100 epochs,
batch 64; the learning-rate factor per epoch is 0.02, 0.05, 0.1 for epochs 0-2 (warm-up), 0.1
through epoch 10, 0.05 through 20, 0.02 through 30 and 0.03 afterwards (upstream's
max(0.02 * 0.98^epoch, 0.03)); SpecAugment stripes (2 x 64 frames, 2 x 8 mel bins) inside the
model in training (the network's own 'spec_augment'), so this loop adds no masking; mixup of the
inputs only with Beta(0.5, 0.5) weights, each clip keeping its own label (mixup_targets=False).
Differences: this loop mixes the log-mel before the network (upstream: after its bn0 and
stripes) and keeps max(w, 1 - w) of the clip itself.
"""
from configs import base


def get_config():
  config = base.get_config()
  config.model.arch = "htsat"
  config.model.name = "HTS-AT"
  config.model.checkpoint = "checkpoints/HTSAT_AudioSet_Saved_1.ckpt"
  config.model.allow_head_mismatch = True
  config.train.batch_size = 64
  config.train.epochs = 100
  config.train.optimizer = "adamw"
  config.train.learning_rate = 1e-3
  config.train.weight_decay = 0.05
  config.train.schedule = "epoch_table"
  config.train.epoch_boundaries = (0, 1, 2, 11, 21, 31)
  config.train.epoch_factors = (0.02, 0.05, 0.1, 0.05, 0.02, 0.03)
  config.train.augment_cycle = ("mixup",)
  config.train.mixup_alpha = 0.5
  config.train.mixup_targets = False
  config.train.checkpoint_every = 100
  config.train.log_every = 10
  return config
