"""HTS-AT fine-tuned from its AudioSet weights with a new 19-class head.

  python launch.py --config=configs/htsat.py --workdir=runs/htsat --config.data.root=ESC-50 \
      --config.model.checkpoint=PATH/HTSAT_AudioSet_Saved_1.ckpt
  python launch.py --config=configs/htsat.py:upstream ...   # HTS-AT's own ESC-50 recipe

The checkpoint is one of HTS-AT's released AudioSet models (RetroCirce/HTS-Audio-Transformer; a
converted jaxnoise model directory works as well); its 527-class token-semantic head is replaced by
a fresh 19-class one, trained with softmax cross-entropy (upstream's 'clip_ce' for ESC-50).
Recipe of HTS-AT's esc_config.py and sed_model.py (configure_optimizers, training_step), except
where the study says otherwise (its Table 4.3 and "General Training Details"):

| setting | default (study) | :upstream | source of the default |
|---|---|---|---|
| optimizer | AdamW, lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.05 on every parameter | same | upstream |
| schedule | factor per epoch 0.02, 0.05, 0.1 (epochs 0-2), 0.1 through 10, 0.05 through 20, 0.02 through 30, 0.03 after (upstream's max(0.02 * 0.98^epoch, 0.03)) | same | upstream |
| batch, length | 64, 100 epochs (10 steps per epoch for 608 clips) | same | study and upstream agree |
| augmentation | none: the network's SpecAugment stripes off, no mixup | stripes (2 x 64 frames, 2 x 8 mel bins) inside the network in training; mixup of the inputs only, Beta(0.5, 0.5), each clip keeping its own label | study (Table 4.3: none in fine-tuning) |
| colored noise | the study's MATLAB generator | f ** exponent ("psd") | study |
| swept model | the best fold ("best") | every fold on its own test fold | study (section 4.2) |

Upstream's mixup differs from this loop's: it mixes after the network's bn0 and stripes, where this
loop mixes the log-mel before the network, and this loop keeps max(w, 1 - w) of the clip itself.
"""
from configs import base


def get_config(variant: str = ""):
  words = base.variant_words(variant, base.RECIPES)
  config = base.get_config()
  config.model.arch = "htsat"
  config.model.name = "HTS-AT"
  config.model.checkpoint = "checkpoints/HTSAT_AudioSet_Saved_1.ckpt"
  config.model.allow_head_mismatch = True
  config.train.batch_size = 64
  # On a CPU, two XLA devices with half the batch each: XLA:CPU runs a device's element-wise work on
  # one thread, so the training step ran 1.20x as fast on the 2-core CPU (benchmarks/train.py).
  config.train.cpu_devices = 2
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
  # Test points of the training curves (the study's Figs 4.3-4.6): every epoch of 608 clips.
  config.train.eval_every = 10
  if "upstream" not in words:
    config.model.overrides.spec_augment = False
    config.train.augment_cycle = ("none",)
    config.train.mixup_alpha = 0.0
    base.study_protocol(config)
  return config
