"""The noise-robustness sweep: every noise x SNR x test clip through a model, sharded over devices.

  engine    the jitted step (gain, mixing, frontend, network, decision), vmapped over SNRs
  sharding  the ('clips', 'snrs') device mesh, multi-host initialisation and transfers
  noises    noises by name and the realisation each clip gets
  readout   model outputs -> the tested ESC-50 classes (own head or zero-shot AudioSet map)
  model     the model(s) to sweep: a checkpoint (converted and cached) or the trained fold models
  store     results.csv / accuracy.csv / run.json, atomic and resumable unit by unit
  run       the 'sweep' mode that ties them together
"""
