"""What the stages (train, sweep) share below them: devices, files, checkpoints, compilation.

  distributed  multi-host initialisation, placing host arrays on a mesh and fetching them back
  files        atomic writes (a killed run leaves the old file or the new one) and CSV reading
  checkpoints  a config's checkpoint path: downloaded once if it is a known release, converted once
  compile      JAX's persistent compilation cache, set from the config at launch
  memory       glibc set to keep freed memory (config.train.retain_freed_memory), so a one-device
               training step's temporaries are not faulted in anew
  progress     one rate/ETA line for a long loop (a bar on a terminal, plain log lines otherwise)

Dependencies flow downward only: this package imports models and convert, never a stage.
"""
