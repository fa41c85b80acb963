"""Training-step speed per model family: clips/s, compile time, FLOP/s against a matmul peak.

For each model (random weights of the published shapes: speed does not depend on the values) at its
config's batch size (mn04: 32, the fine-tuning of the issue; the others: configs/*.py's 64) or
--batch, the step of ``jaxnoise.train.steps.make_train_step`` (frontend, network forward and
backward, BatchNorm statistics, Adam update; no augmentation, the ESC-19 head) runs on 5-s clips.
Printed: the first call's compile time, on its own; then steps/s and clips/s (best of --repeats
interleaved rounds), the FLOPs of one step from XLA's cost analysis of the compiled step, and the
FLOP/s achieved as a share of a float32 matmul peak measured in the same rounds. Timings are
printed, never asserted.

With ``--efficientat PATH`` (a checkout of github.com/fschmid56/EfficientAT, not part of this
repository) the mn models are also timed in PyTorch, interleaved with the JAX step: upstream's
``get_model`` is imported from PATH and trained as upstream's ex_esc50.py does (log-mel frontend,
forward, cross entropy, backward, Adam step). The frontend is written here in torch, as upstream's
AugmentMelSTFT computes it without augmentation (pre-emphasis, 1024-point STFT with an 800-sample
Hann window, hop 320, 128 Kaldi mels, ``(log(x + 1e-5) + 4.5) / 5``), so torchaudio is not needed;
upstream's blocks use torchvision's ``ConvNormActivation``, and where torchvision cannot be imported
(no build matching the installed torch) ``conv_norm_activation_shim`` stands in for it with the
same layers (convolution, normalisation, activation) written here.

  python benchmarks/train.py --model mn04 [--batch 32] [--repeats 3] [--efficientat PATH]
  models: mn04, mn40, cnn10, tfnet, htsat
"""
import argparse
import contextlib
import dataclasses
import io
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from benchmarks.frontend import load_clips  # pylint: disable=wrong-import-position
from benchmarks.sweep import ESC19_NAMES, matmul_peak  # pylint: disable=wrong-import-position
from configs import base  # pylint: disable=wrong-import-position
from jaxnoise.audio import filterbanks  # pylint: disable=wrong-import-position
from jaxnoise.models import mobilenet, registry  # pylint: disable=wrong-import-position
from jaxnoise.train import optim, steps  # pylint: disable=wrong-import-position

MODELS = {  # name: (arch, config overrides, batch size)
    "mn04": ("mn", {"width": 0.4}, 32),
    "mn40": ("mn", {"width": 4.0}, 64),
    "cnn10": ("cnn10", {}, 64),
    "tfnet": ("tfnet", {}, 64),
    "htsat": ("htsat", {}, 64),
}


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


def jax_step(spec, variables, clips, labels, train_config):
  """``(run one step, compile seconds, FLOPs per step)`` of jaxnoise's training step."""
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
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  counter = [0]

  def run():
    counter[0] += 1
    state["state"], metrics = compiled(state["state"], *batch, jax.random.key(counter[0]), False,
                                       False)
    jax.block_until_ready(metrics)

  return run, compile_seconds, float(cost.get("flops", float("nan")))


def conv_norm_activation_shim():
  """Registers a ``torchvision.ops.misc`` module whose ``ConvNormActivation`` builds what
  torchvision's does: Conv2d (padding (k - 1) // 2 x dilation, a bias only without a norm), then
  the norm layer and the activation when given."""
  import types  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel

  class ConvNormActivation(torch.nn.Sequential):
    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=None, groups=1,
                 norm_layer=torch.nn.BatchNorm2d, activation_layer=torch.nn.ReLU, dilation=1,
                 inplace=True, bias=None):
      padding = (kernel_size - 1) // 2 * dilation if padding is None else padding
      layers = [torch.nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                                dilation=dilation, groups=groups,
                                bias=norm_layer is None if bias is None else bias)]
      if norm_layer is not None:
        layers.append(norm_layer(out_channels))
      if activation_layer is not None:
        layers.append(activation_layer(**({} if inplace is None else {"inplace": inplace})))
      super().__init__(*layers)
      self.out_channels = out_channels

  modules = {name: types.ModuleType(name)
             for name in ("torchvision", "torchvision.ops", "torchvision.ops.misc")}
  modules["torchvision.ops.misc"].ConvNormActivation = ConvNormActivation
  modules["torchvision"].ops = modules["torchvision.ops"]
  modules["torchvision.ops"].misc = modules["torchvision.ops.misc"]
  sys.modules.update(modules)


def torch_step(efficientat: pathlib.Path, width: float, clips, labels):
  """One upstream EfficientAT training step (imported from ``efficientat``), and its compile
  time (none: eager PyTorch)."""
  import torch  # pylint: disable=import-outside-toplevel
  sys.path.insert(0, str(efficientat))
  try:
    import torchvision.ops.misc  # pylint: disable=import-outside-toplevel,unused-import
  except (ImportError, RuntimeError):
    conv_norm_activation_shim()
  with contextlib.chdir(efficientat):  # upstream reads its label table relative to its root
    from models.mn.model import get_model  # pylint: disable=import-outside-toplevel
  with contextlib.redirect_stdout(io.StringIO()):  # upstream prints the whole network
    model = get_model(num_classes=len(ESC19_NAMES), width_mult=width)
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
  waveforms, targets = torch.from_numpy(clips), torch.from_numpy(labels).long()
  preemphasis = torch.as_tensor([[[-0.97, 1.0]]])
  window = torch.hann_window(800, periodic=False)
  bank = torch.from_numpy(filterbanks.kaldi_mel(32000, 1024, 128, 0.0, 15000.0).T.astype("float32"))
  model.train()

  def mel(x):
    x = torch.nn.functional.conv1d(x.unsqueeze(1), preemphasis).squeeze(1)
    spectrum = torch.stft(x, 1024, hop_length=320, win_length=800, window=window, center=True,
                          return_complex=True)
    return (torch.log(bank @ spectrum.abs().square() + 1e-5) + 4.5) / 5

  def run():
    with torch.no_grad():  # the waveform needs no gradient; upstream's graph holds none either
      features = mel(waveforms).unsqueeze(1)
    logits, _ = model(features)
    loss = torch.nn.functional.cross_entropy(logits, targets)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()

  return run


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--model", choices=sorted(MODELS), default="mn04")
  parser.add_argument("--batch", type=int, default=0, help="0: the config's batch size")
  parser.add_argument("--precision", default="highest", help="config.train.precision")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--efficientat", type=pathlib.Path, default=None,
                      help="a checkout of EfficientAT, for the PyTorch step of the mn models")
  args = parser.parse_args()

  spec, variables = build(args.model, args.precision)
  batch = args.batch or MODELS[args.model][2]
  clips = load_clips(batch, spec.sample_rate)
  labels = np.arange(batch) % len(ESC19_NAMES)
  train_config = base.get_config().train
  train_config.update(dict(batch_size=batch, augment_cycle=("none",), learning_rate=1e-4))
  baseline = {}
  if args.efficientat is not None and MODELS[args.model][0] == "mn":
    baseline["PyTorch (upstream EfficientAT)"] = torch_step(
        args.efficientat, MODELS[args.model][1]["width"], clips, labels)
  run_jax, compile_seconds, flops = jax_step(spec, variables, clips, labels, train_config)
  matmul, matmul_flops = matmul_peak()
  runs = {"jaxnoise": run_jax, "matmul": matmul, **baseline}
  for run in runs.values():  # warm up (PyTorch's allocator, the first JAX dispatch)
    run()
  best = {name: float("inf") for name in runs}
  for _ in range(args.repeats):
    for name, run in runs.items():
      for _ in range(3 if name == "matmul" else 1):
        started = time.perf_counter()
        run()
        best[name] = min(best[name], time.perf_counter() - started)
  peak = matmul_flops / best.pop("matmul")
  print(f"\n{args.model} ({spec.arch}) training step, batch {batch} x 5-s clips, precision "
        f"{args.precision}, {jax.devices()[0].platform} x {jax.device_count()}")
  print(f"  compile (first step): {compile_seconds:.1f} s")
  print(f"  FLOPs per step (XLA cost analysis of the compiled step): {flops / 1e9:.1f} G")
  print(f"  matmul peak, measured in the same rounds (4096^3 float32): {peak / 1e9:.1f} GFLOP/s")
  print(f"  {'':<32} {'steps/s':>8} {'clips/s':>8} {'GFLOP/s':>8} {'of peak':>8}")
  for name, seconds in best.items():
    achieved = flops / seconds  # the same work in both (the JAX step's FLOPs)
    print(f"  {name:<32} {1 / seconds:8.3f} {batch / seconds:8.1f} {achieved / 1e9:8.1f} "
          f"{achieved / peak:8.1%}")
  if len(best) > 1:
    torch_seconds = best["PyTorch (upstream EfficientAT)"]
    print(f"  ratio jaxnoise / PyTorch: {torch_seconds / best['jaxnoise']:.2f}x")


if __name__ == "__main__":
  main()
