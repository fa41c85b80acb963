"""Training-step speed per model family: clips/s, compile time, FLOP/s against a matmul peak.

For each model (random weights of the published shapes: speed does not depend on the values) at its
config's batch size (mn04: 32, the fine-tuning of the issue; the others: configs/*.py's 64) or
--batch, the step of ``jaxnoise.train.steps.make_train_step`` (frontend, network forward and
backward, BatchNorm statistics, Adam update; no augmentation, the ESC-19 head) runs on 5-s clips.
Printed: the first call's compile time, on its own; then steps/s and clips/s (best of --repeats
interleaved rounds; each timed sample is --consecutive steps run back to back, as a training loop
runs them, divided by their number), the FLOPs of one step from XLA's cost analysis of the compiled
step, and the FLOP/s achieved as a share of a float32 matmul peak measured in the same rounds.
Timings are printed, never asserted.

PyTorch baselines (``benchmarks/torch_baselines.py``). Given a checkout of an upstream repository
(none is part of this one: each is imported at run time from PATH), its model of the family is built
with the ESC-19 head, trained on the CPU as upstream's training script trains it (train mode,
upstream's loss, backward, upstream's optimiser at a fixed learning rate, zero_grad), timed in the
same interleaved rounds as the JAX step, and compared in a line ``ratio jaxnoise / PyTorch (...)``
(steps/s of jaxnoise over those of PyTorch: above 1 when jaxnoise is faster). What differs from the
JAX step:

  --efficientat PATH (mn04, mn40): fschmid56/EfficientAT's ``get_model`` as ex_esc50.py trains it.
      Its log-mel is written here in torch and runs inside the step, as in the JAX step
      (torchaudio is not needed); a stand-in replaces torchvision's ConvNormActivation where
      torchvision does not import.
  --tfnet-repo PATH (cnn10, tfnet): the classes jaxnoise ports, ``Cnn`` and ``TFNet`` of
      Hadryan/TFNet-for-Environmental-Sound-Classification (util_esc50/net.py), as
      util_esc50/main.py trains a plain batch. Upstream trains on log-mels computed offline with
      numpy/librosa, so its step starts from features computed once before the timing (by
      jaxnoise's frontend, the same normalised log-mel), where the JAX step computes them in every
      step. Loss: nll on log_softmax; Adam with amsgrad.
  --panns PATH (cnn10, a second row): PANNs' ``Cnn10`` (qiuqiangkong/audioset_tagging_cnn,
      pytorch/models.py) built with the study's frontend (44.1 kHz, window 1764, hop 882, 40 mels,
      50-11025 Hz) on the same waveforms, its torchlibrosa log-mel inside the step. It is NOT the
      network of jaxnoise's cnn10 (the TFNet repository's ``Cnn``): it adds ``bn0`` (resized from
      its hard-coded 64 bins to 40), SpecAugment stripes, dropout, ``fc1``, mean + max pooling over
      time, a sigmoid and binary cross entropy, and gets 251 frames where jaxnoise keeps 250; Adam
      with amsgrad, lr 1e-3.
  --htsat-repo PATH (htsat): RetroCirce/HTS-Audio-Transformer's ``HTSAT_Swin_Transformer`` with its
      esc_config.py, as its Lightning module trains it: the clip doubled to 10 s once before the
      timing (upstream's data loader does it; jaxnoise's frontend repeats the clip in every step),
      log-mel, bn0 and SpecAugment stripes inside the model (jaxnoise's HTS-AT has the stripes
      too), cross entropy, gradient-norm clipping at 1.0, AdamW (lr 1e-3, weight decay 0.05).

The JAX step uses Adam at lr 1e-4 for every family, without clipping; the upstream optimisers'
element-wise updates cost the same order. Each row's GFLOP/s is the JAX step's FLOPs over that row's
time. ``--torch-threads N`` sets PyTorch's intra-op threads (its default: one per core).

How the two sides run. The JAX step runs as the training stage runs it: the CPU split into the model
config's ``config.train.cpu_devices`` (``--cpu-devices`` to change it; the header line prints the
count), glibc's defaults unless ``--retain-memory`` (``config.train.retain_freed_memory``,
``jaxnoise.runtime.memory``). Each PyTorch step runs in a worker process of its own
(``torch_baselines.in_worker``), driven one step at a time in the same interleaved rounds, with a
1-s pause before every timed sample: in one process the JAX step ran 1.5-2.5x slower after a PyTorch
step than alone (``--torch-in-process`` shows it), which would measure the two runtimes'
interference instead of either one. A sample is several steps (``--consecutive``, default 4) because
on these virtual machines the first step after a pause pays for its page faults far more than the
steps after it (mn04 on 2026-12-02: 0.58 steps/s timing single steps, 1.12 four at a time, in runs
of this script), and a training loop pauses only between epochs; ``--consecutive 1`` times single
steps. The worker keeps upstream's
process as it is (glibc's defaults); ``--torch-retain-memory`` gives it the settings of
``--retain-memory``.

  python benchmarks/train.py --model mn04 [--batch 32] [--repeats 3] [--consecutive 4]
      [--efficientat PATH]
  python benchmarks/train.py --model cnn10 --tfnet-repo PATH [--panns PATH]
  python benchmarks/train.py --model htsat --htsat-repo PATH
  models: mn04, mn40, cnn10, tfnet, htsat
"""
import argparse
import dataclasses
import importlib
import math
import pathlib
import sys
import time
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from benchmarks import common, torch_baselines  # pylint: disable=wrong-import-position
from benchmarks.frontend import load_clips  # pylint: disable=wrong-import-position
from benchmarks.sweep import ESC19_NAMES, matmul_peak  # pylint: disable=wrong-import-position
from configs import base  # pylint: disable=wrong-import-position
from jaxnoise.models import layers, mobilenet, registry  # pylint: disable=wrong-import-position
from jaxnoise.runtime import distributed, memory  # pylint: disable=wrong-import-position
from jaxnoise.train import optim, steps  # pylint: disable=wrong-import-position

MODELS = {  # name: (arch, config overrides, batch size)
    "mn04": ("mn", {"width": 0.4}, 32),
    "mn40": ("mn", {"width": 4.0}, 64),
    "cnn10": ("cnn10", {}, 64),
    "tfnet": ("tfnet", {}, 64),
    "htsat": ("htsat", {}, 64),
}
CONFIG_FILES = {"mn04": "mn40_as", "mn40": "mn40_as", "cnn10": "cnn10", "tfnet": "tfnet",
                "htsat": "htsat"}  # configs/<file>.py: its config.train.cpu_devices is the default


def build(name: str, precision: str):
  """``(spec, variables)`` of ``name`` with an ESC-19 head, random weights."""
  arch, overrides, _ = MODELS[name]
  overrides = dict(overrides, num_classes=len(ESC19_NAMES))
  if "labels" in registry.default_config(arch):
    overrides["labels"] = list(ESC19_NAMES)
  spec = dataclasses.replace(registry.build_spec(arch, overrides), precision=precision)
  if arch == "mn":
    return spec, mobilenet.random_variables(spec)
  return spec, jax.jit(spec.init)(jax.random.key(0))


def prepare(name: str, batch: int, cpu_devices: int, precision: str = "highest"):
  """``(spec, variables, clips, labels, train config)`` of ``name``'s step: the CPU split into
  ``cpu_devices`` (-1: the model config's), ``batch`` clips (0: the config's batch size)."""
  config_file = importlib.import_module(f"configs.{CONFIG_FILES[name]}")
  distributed.use_cpu_devices(cpu_devices if cpu_devices >= 0 else
                              config_file.get_config().train.cpu_devices)
  spec, variables = build(name, precision)
  batch = batch or MODELS[name][2]
  clips = load_clips(batch, spec.sample_rate)
  labels = np.arange(batch) % len(ESC19_NAMES)
  train_config = base.get_config().train
  train_config.update(dict(batch_size=batch, augment_cycle=("none",), learning_rate=1e-4))
  return spec, variables, clips, labels, train_config


def jax_step(spec, variables, clips, labels, train_config, with_hlo: bool = False):
  """``(run one step, compile seconds, FLOPs per step)`` of jaxnoise's training step, and the
  compiled step's HLO text last ``with_hlo`` (``benchmarks/profile_step.py``)."""
  schedule = optim.learning_rate_schedule(train_config, steps_per_epoch=1.0)
  tx = optim.optimizer(train_config, schedule)
  placement = steps.make_placement()
  variables = dict(variables)
  params = variables.pop("params")
  state = {"state": placement.replicate({"step": jnp.zeros((), jnp.int32), "params": params,
                                         "model_state": variables,
                                         "opt_state": tx.init(params)})}
  step = steps.make_train_step(spec, tx, schedule, train_config, placement)
  batch = (placement.shard_batch(clips), placement.shard_batch(labels))
  started = time.perf_counter()
  compiled = step.lower(state["state"], *batch, jax.random.key(0), False, False).compile()
  compile_seconds = time.perf_counter() - started
  # XLA's cost analysis counts a loop's body once, and the CNNs' kernel gradients loop over clips
  # (layers.convolve_same_3x3): count the FLOPs of the same step with XLA's own kernel gradient,
  # the same arithmetic without the loop.
  with mock.patch.object(layers, "SHIFTED_KERNEL_GRADIENT_MIN_AREA", math.inf):
    unrolled = steps.make_train_step(spec, tx, schedule, train_config, placement)
    cost = unrolled.lower(state["state"], *batch, jax.random.key(0), False,
                          False).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  counter = [0]

  def run():
    counter[0] += 1
    state["state"], metrics = compiled(state["state"], *batch, jax.random.key(counter[0]), False,
                                       False)
    jax.block_until_ready(metrics)

  # The cost analysis is that of one device's part of the partitioned step.
  flops = float(cost.get("flops", float("nan"))) * placement.size
  if with_hlo:
    return run, compile_seconds, flops, compiled.as_text()
  return run, compile_seconds, flops


# Command-line flag of an upstream checkout -> the models whose PyTorch step it gives.
CHECKOUTS = {"efficientat": ("mn04", "mn40"), "tfnet_repo": ("cnn10", "tfnet"),
             "panns": ("cnn10",), "htsat_repo": ("htsat",)}
TFNET_REPO_CLASSES = {"cnn10": "Cnn", "tfnet": "TFNet"}  # util_esc50/net.py
# Pause before every timed sample (benchmarks/common.interleaved_best). It did not cure the slowdown
# of a JAX step after a PyTorch step in one process (no thread of the process used CPU between the
# steps); the PyTorch steps' worker processes did.
SETTLE_SECONDS = 1.0


def back_to_back(run, count: int):
  """``run`` called ``count`` times in a row, as one timed sample."""
  def run_several():
    for _ in range(count):
      run()
  return run_several


def torch_steps(args, spec, clips, labels) -> tuple[dict, int | None]:
  """``({row label: run one step}, torch's intra-op threads)``: the upstream PyTorch steps
  (``benchmarks/torch_baselines.py``) whose checkouts were given and apply to ``args.model``, each
  in a worker process (``torch_baselines.in_worker``; in this one with --torch-in-process)."""
  classes = len(ESC19_NAMES)
  builders = {}
  for flag, models in CHECKOUTS.items():
    root = getattr(args, flag)
    if root is not None and args.model not in models:
      print(f"--{flag.replace('_', '-')} gives the PyTorch step of {', '.join(models)} only; "
            f"not used for {args.model}", file=sys.stderr)
      continue
    if root is None:
      continue
    if flag == "efficientat":
      builders["PyTorch (EfficientAT)"] = (torch_baselines.efficientat, root,
                                           MODELS[args.model][1]["width"], clips, labels, classes)
    elif flag == "tfnet_repo":  # upstream trains on log-mels computed offline: computed here once
      name = TFNET_REPO_CLASSES[args.model]
      features = np.asarray(spec.features(jnp.asarray(clips)))
      builders[f"PyTorch (TFNet repo {name})"] = (torch_baselines.tfnet_repo, root, name,
                                                  features, labels, classes)
    elif flag == "panns":
      builders["PyTorch (PANNs Cnn10)"] = (torch_baselines.panns_cnn10, root, clips, labels,
                                           classes)
    elif flag == "htsat_repo":
      builders["PyTorch (HTS-AT)"] = (torch_baselines.htsat, root, clips, labels, classes)
  runs, thread_count = {}, None
  for label, (builder, *arguments) in builders.items():
    if args.torch_in_process:
      thread_count = torch_baselines.threads(args.torch_threads)
      runs[label] = builder(*arguments)
    else:
      runs[label], thread_count = torch_baselines.in_worker(
          builder, *arguments, thread_count=args.torch_threads,
          retain_memory=args.torch_retain_memory)
  return runs, thread_count


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--model", choices=sorted(MODELS), default="mn04")
  parser.add_argument("--batch", type=int, default=0, help="0: the config's batch size")
  parser.add_argument("--precision", default="highest", help="config.train.precision")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--efficientat", type=pathlib.Path, default=None, metavar="PATH",
                      help="a checkout of fschmid56/EfficientAT: PyTorch step of mn04, mn40")
  parser.add_argument("--tfnet-repo", type=pathlib.Path, default=None, metavar="PATH",
                      help="a checkout of Hadryan/TFNet-for-Environmental-Sound-Classification: "
                           "PyTorch step of cnn10 (its Cnn) and tfnet")
  parser.add_argument("--panns", type=pathlib.Path, default=None, metavar="PATH",
                      help="a checkout of qiuqiangkong/audioset_tagging_cnn: PANNs Cnn10 at the "
                           "study's 44.1 kHz frontend, a second PyTorch row for cnn10")
  parser.add_argument("--htsat-repo", type=pathlib.Path, default=None, metavar="PATH",
                      help="a checkout of RetroCirce/HTS-Audio-Transformer: PyTorch step of htsat")
  parser.add_argument("--torch-threads", type=int, default=0,
                      help="torch.set_num_threads for the PyTorch steps; 0: torch's default")
  parser.add_argument("--torch-in-process", action="store_true",
                      help="run the PyTorch steps in this process, not in a worker process each")
  parser.add_argument("--retain-memory", action="store_true",
                      help="config.train.retain_freed_memory=True for the JAX step")
  parser.add_argument("--torch-retain-memory", action="store_true",
                      help="set glibc in the PyTorch workers as jaxnoise.runtime.memory does")
  parser.add_argument("--consecutive", type=int, default=4,
                      help="steps run back to back in each timed sample, as a training loop runs "
                           "them (the time printed is per step)")
  parser.add_argument("--cpu-devices", type=int, default=-1,
                      help="config.train.cpu_devices (-1: that of the model's configs/*.py)")
  args = parser.parse_args()
  # As the training stage does, before XLA's threads start.
  if args.retain_memory:
    memory.retain_freed_memory()
  spec, variables, clips, labels, train_config = prepare(args.model, args.batch, args.cpu_devices,
                                                         args.precision)
  batch = len(labels)
  baseline, torch_threads = torch_steps(args, spec, clips, labels)
  run_jax, compile_seconds, flops = jax_step(spec, variables, clips, labels, train_config)
  matmul, matmul_flops = matmul_peak()
  steps_per_sample = {name: args.consecutive for name in ("jaxnoise", *baseline)}
  runs = {"jaxnoise": run_jax, "matmul": matmul, **baseline}
  runs = {name: back_to_back(run, steps_per_sample.get(name, 1)) for name, run in runs.items()}
  best = common.interleaved_best(runs, args.repeats, settle_seconds=SETTLE_SECONDS,
                                 calls={"matmul": 3})
  best = {name: seconds / steps_per_sample.get(name, 1) for name, seconds in best.items()}
  peak = matmul_flops / best.pop("matmul")
  print(f"\n{args.model} ({spec.arch}) training step, batch {batch} x 5-s clips, precision "
        f"{args.precision}, {jax.devices()[0].platform} x {jax.device_count()}")
  print(f"  compile (first step): {compile_seconds:.1f} s")
  print(f"  FLOPs per step (XLA cost analysis of the compiled step): {flops / 1e9:.1f} G")
  print(f"  matmul peak, measured in the same rounds (4096^3 float32): {peak / 1e9:.1f} GFLOP/s")
  if torch_threads:
    print(f"  PyTorch intra-op threads: {torch_threads} (--torch-threads), "
          f"{'in this process' if args.torch_in_process else 'one worker process per step'}")
  print(f"  {'':<32} {'steps/s':>8} {'clips/s':>8} {'GFLOP/s':>8} {'of peak':>8}")
  for name, seconds in best.items():
    achieved = flops / seconds  # the same work in both (the JAX step's FLOPs)
    print(f"  {name:<32} {1 / seconds:8.3f} {batch / seconds:8.1f} {achieved / 1e9:8.1f} "
          f"{achieved / peak:8.1%}")
  for name in baseline:  # steps/s of jaxnoise over those of PyTorch: > 1 when jaxnoise is faster
    print(f"  ratio jaxnoise / {name}: {best[name] / best['jaxnoise']:.2f}x")


if __name__ == "__main__":
  main()
