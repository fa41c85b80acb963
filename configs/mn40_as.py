"""The study's EfficientAT MobileNet fine-tuned from its AudioSet weights with a new 19-class head.

  python launch.py --config=configs/mn40_as.py --workdir=runs/mn40_as --config.data.root=ESC-50 \
      --config.model.checkpoint=PATH/mn40_as_ext_mAP_487.pt
  python launch.py --config=configs/mn40_as.py:mn10_as ... \
      --config.model.checkpoint=PATH/mn10_as_mAP_471.pt            # 4.88 M parameters
  python launch.py --config=configs/mn40_as.py:upstream ...        # EfficientAT's recipe
  (words combine: --config=configs/mn40_as.py:mn10_as,upstream)

Which MobileNet: the study's text names mn40_as (mn40_as_ext, width 4.0, 68.4 M parameters with
the AudioSet head), but its complexity table (Table 5.1) gives 4.88 M parameters, which is
EfficientAT's mn10_as (width 1.0: 4,876,831 parameters with the 527-class head). The default is
mn40_as_ext as named; the ``mn10_as`` word selects the width-1.0 model. The checkpoint is
EfficientAT's released AudioSet model (a GitHub release asset of fschmid56/EfficientAT; a converted
jaxnoise model directory works as well); its 527-class head is replaced by a fresh 19-class one.

Recipe of EfficientAT's ex_esc50.py (fschmid56/EfficientAT, commit 0d01f955), except where the
study says otherwise (its Table 4.3 and "General Training Details"):

| setting | default (study) | :upstream | source of the default |
|---|---|---|---|
| optimizer | Adam, lr 6e-5, no weight decay | same | upstream |
| schedule | per epoch: exponential warm-up over 10 epochs, linear decay from epoch 10 over 65 epochs to 0.01 of the peak | same | upstream |
| batch, length | 64, 50 epochs (10 steps per epoch for 608 clips) | 64, 50 epochs | study (upstream: 128, 80 epochs) |
| augmentation | none | mixup alpha 0.3 on the log-mel (per-clip weights max(w, 1 - w), both labels' losses mixed), no masking | study (Table 4.3: none in fine-tuning) |
| colored noise | the study's MATLAB generator | f ** exponent ("psd") | study |
| swept model | the best fold ("best") | every fold on its own test fold | study (section 4.2) |

With 50 epochs the decay ends at 0.41 of the peak. Upstream's waveform augmentations (random roll,
wave mixing, +-12 dB gain) and random mel-band edges of its frontend are applied by neither recipe.
"""
from configs import base

MODELS = {  # variant word: (model name, checkpoint EfficientAT releases)
    "mn40_as_ext": ("mn40_as_ext", "checkpoints/mn40_as_ext_mAP_487.pt"),
    "mn10_as": ("mn10_as", "checkpoints/mn10_as_mAP_471.pt"),
}


def get_config(variant: str = ""):
  words = base.variant_words(variant, base.RECIPES + tuple(MODELS))
  chosen = [word for word in MODELS if word in words]
  if len(chosen) > 1:
    raise ValueError(f"config variant {variant!r}: choose one model of {', '.join(MODELS)}")
  name, checkpoint = MODELS[chosen[0] if chosen else "mn40_as_ext"]
  config = base.get_config()
  config.model.arch = "mn"
  config.model.name = name
  config.model.checkpoint = checkpoint
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
  # Test points of the training curves (the study's Figs 4.3-4.6): every epoch of 608 clips.
  config.train.eval_every = 10
  if "upstream" not in words:
    config.train.augment_cycle = ("none",)
    config.train.mixup_alpha = 0.0
    base.study_protocol(config)
  return config
