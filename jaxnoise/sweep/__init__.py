"""The noise-robustness sweep: every noise x SNR x test clip through a model, sharded over devices.

Noises by name (shared with training's noise augmentation) are ``jaxnoise.data.noises``.

  engine    the jitted step (gain, mixing, frontend, network, decision), vmapped over SNRs
  sharding  the ('clips', 'snrs') device mesh (placement: jaxnoise.runtime.distributed)
  readout   model outputs -> the tested ESC-50 classes (own head or zero-shot AudioSet map)
  model     the model(s) to sweep: a checkpoint (jaxnoise.runtime.checkpoints) or trained models
  store     results.csv / accuracy.csv / run.json, atomic and resumable unit by unit
  accuracy  accuracy.csv from the tidy rows (mean and interval over realisations)
  run       the 'sweep' mode that ties them together
"""
