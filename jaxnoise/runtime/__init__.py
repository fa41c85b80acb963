"""What the stages (train, sweep) share below them: devices, files, checkpoints, compilation.

  distributed  multi-host initialisation, placing host arrays on a mesh and fetching them back
  files        atomic writes (a killed run leaves the old file or the new one) and CSV reading
  checkpoints  a config's checkpoint path: downloaded once if it is a known release, converted once
  compile      JAX's persistent compilation cache, set from the config at launch
  memory       restarting launch.py with glibc backing large allocations with transparent huge
               pages (config.huge_pages), so XLA:CPU's temporaries are faulted in 2 MiB at a time
  progress     one rate/ETA line for a long loop (a bar on a terminal, plain log lines otherwise)

Dependencies flow downward only: this package imports models and convert, never a stage.
"""
