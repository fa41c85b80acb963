"""BEATs fine-tuned from its AudioSet weights with a new 19-class head.

  python launch.py --config=configs/beats.py --workdir=runs/beats --config.data.root=ESC-50 \
      --config.model.checkpoint=PATH/BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt

The checkpoint is a released BEATs file (microsoft/unilm ``beats/``; a converted jaxnoise model
directory works as well); its 527-class predictor is replaced by a fresh 19-class one, trained with
softmax cross-entropy on the token-averaged logits.
From the checkpoint's own 'cfg' (kept by the converter, applied by the model in training): layer
drop (0.05 in the golden copy of the released configuration), layer-wise gradient decay (0.6) and
the release's dropouts.
Assumed (the BEATs paper's ESC-50 fine-tuning table was not available to check; these follow the
fine-tuning of comparable audio transformers, AST and HTS-AT): AdamW, peak learning rate 5e-5,
weight decay 0.01, 30 epochs of batch 64; a linear warm-up over the first 20 updates (2 epochs of
the 608 esc19 training clips of a fold), then a linear decay from epoch 2 to 0.01 of the peak at
epoch 30; SpecAugment-style masking of the fbank (2 bands of 0-47 frames and 2 of 0-15 mel bins,
set to 0, which is the published fbank mean after normalisation) together with mixup (alpha 0.5,
labels mixed) on every batch.
A self-supervised BEATs checkpoint (no predictor, ``finetuned_model`` False) is refused by the
converter, so the AS2M fine-tuned release is the starting point, as for HTS-AT and EfficientAT.
"""
from configs import base


def get_config():
  config = base.get_config()
  config.model.arch = "beats"
  config.model.name = "BEATs"
  config.model.checkpoint = "checkpoints/BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt"
  config.model.allow_head_mismatch = True
  config.train.batch_size = 64
  config.train.epochs = 30
  config.train.optimizer = "adamw"
  config.train.learning_rate = 5e-5
  config.train.weight_decay = 0.01
  config.train.schedule = "warmup_linear_down"
  config.train.warmup_epochs = 0
  config.train.warmup_steps = 20
  config.train.rampdown_start_epoch = 2
  config.train.rampdown_epochs = 28
  config.train.final_lr_factor = 0.01
  config.train.augment_cycle = ("mask+mixup",)
  config.train.mixup_alpha = 0.5
  config.train.time_masks = 2
  config.train.time_mask_width = 48
  config.train.freq_masks = 2
  config.train.freq_mask_width = 16
  config.train.checkpoint_every = 100
  config.train.log_every = 10
  return config
