"""Upstream PyTorch training steps that ``benchmarks/train.py`` times beside jaxnoise's.

Each builder imports the upstream model from a checkout given on the command line (none is part of
this repository), builds it with an ESC-19 head and returns a function that runs one training step
as the upstream training script does: forward with the model in train mode, the upstream loss,
backward, the upstream optimiser's step at a fixed learning rate, ``zero_grad``. Everything that
upstream computes before the batch reaches the model (offline features, repeated waveforms) is
computed here once, outside the timed step.

Builders (their docstrings say what each step takes and does): ``efficientat`` (EfficientAT's
MobileNets), ``tfnet_repo`` (the TFNet repository's ``Cnn`` and ``TFNet``), ``panns_cnn10`` (PANNs'
``Cnn10``) and ``htsat`` (HTS-AT). Every model runs on the CPU, in float32.

``in_worker(builder, *arguments, threads=N)`` builds and runs such a step in a process of its own,
driven one step at a time from the benchmark (see its docstring for why).

Nothing here imports torch at module level: ``import benchmarks.torch_baselines`` works without it.
"""
import contextlib
import io
import multiprocessing
import os
import pathlib
import sys
import types

import numpy as np

# The TFNet repository's offline features (util_esc50/feature.py) stack the log-mel with its delta
# and delta-delta; its networks read channel 0 only.
TFNET_CHANNELS = 3
# Its log-mel settings (util_esc50/config.py), the study's, with which panns_cnn10 builds Cnn10.
TFNET_FRONTEND = {"sample_rate": 44100, "window_size": 1764, "hop_size": 882, "mel_bins": 40,
                  "fmin": 50, "fmax": 11025}


@contextlib.contextmanager
def upstream_imports(root: pathlib.Path):
  """Makes ``root`` importable for the block, then forgets every module loaded from it.

  Upstream repositories use top-level names such as ``models``, ``utils`` and ``losses`` that
  clash between checkouts (and with each other's ``sys.path``); the imported objects stay usable.
  """
  root = str(pathlib.Path(root).resolve())
  sys.path.insert(0, root)
  before = set(sys.modules)
  try:
    yield
  finally:
    # Decide first: a namespace package's __path__ is recomputed from sys.path and its parent's.
    loaded = [name for name in set(sys.modules) - before if loaded_from(sys.modules[name], root)]
    sys.path.remove(root)
    for name in loaded:
      del sys.modules[name]


def loaded_from(module, root: str) -> bool:
  """Whether ``module``'s file (a namespace package's path: it has no file) lies under ``root``."""
  file = getattr(module, "__file__", None)
  if file:
    return file.startswith(root + os.sep)
  try:
    return any(str(path).startswith(root + os.sep) for path in module.__path__)
  except (AttributeError, TypeError, KeyError):  # no path, or one that cannot be listed
    return False


def stub_modules(*names: str) -> None:
  """Registers empty modules for the ``names`` that cannot be imported, for upstream files that
  import a package at top level but never use it on the path timed here."""
  import importlib  # pylint: disable=import-outside-toplevel
  for name in names:
    try:
      importlib.import_module(name)
    except ImportError:
      sys.modules[name] = types.ModuleType(name)


def conv_norm_activation_shim():
  """Registers a ``torchvision.ops.misc`` module whose ``ConvNormActivation`` builds what
  torchvision's does: Conv2d (padding (k - 1) // 2 x dilation, a bias only without a norm), then
  the norm layer and the activation when given."""
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


@contextlib.contextmanager
def cuda_float_tensor_on_cpu():
  """For the block, ``torch.cuda.FloatTensor(values)`` makes a CPU float32 tensor.

  The TFNet repository creates each TFBlock's ``alpha`` with ``torch.cuda.FloatTensor``, which a
  CPU build of torch refuses; the benchmark times every PyTorch model on the CPU.
  """
  import torch  # pylint: disable=import-outside-toplevel
  original = torch.cuda.FloatTensor
  torch.cuda.FloatTensor = lambda values: torch.tensor(values, dtype=torch.float32)
  try:
    yield
  finally:
    torch.cuda.FloatTensor = original


def threads(count: int) -> int:
  """Sets torch's intra-op thread count when ``count`` > 0; returns the count in use.

  On a machine where another process holds a core, torch's default (one thread per core) can run
  several times slower than one thread, its threads waiting on each other; say which was used.
  """
  import torch  # pylint: disable=import-outside-toplevel
  if count > 0:
    torch.set_num_threads(count)
  return torch.get_num_threads()


def serve_steps(connection, builder_name: str, arguments: tuple, thread_count: int,
                retain_memory: bool) -> None:
  """The worker of ``in_worker``: builds the step, sends its thread count, then runs one step per
  request until the benchmark closes the pipe or sends None (an error is sent back as text)."""
  try:
    if retain_memory:
      from jaxnoise.runtime import memory  # pylint: disable=import-outside-toplevel
      memory.retain_freed_memory()
    count = threads(thread_count)
    step = globals()[builder_name](*arguments)
    connection.send(count)
    while connection.recv() is not None:
      step()
      connection.send(True)
  except EOFError:  # the benchmark has finished
    return
  except Exception as error:  # pylint: disable=broad-except  (reported by the parent)
    connection.send(f"{type(error).__name__}: {error}")


def in_worker(builder, *arguments, thread_count: int = 0, retain_memory: bool = False):
  """``(run one step, torch's intra-op thread count)`` of ``builder(*arguments)`` (a builder of this
  module), built and run in a spawned process; ``run()`` returns once the worker's step is done.
  ``retain_memory``: glibc set as ``jaxnoise.runtime.memory`` sets it, in the worker too.

  A benchmark interleaves the rounds of JAX and PyTorch so that changes in the machine's speed hit
  both, but not in one process: there the JAX step ran 1.5-2.5x slower after a PyTorch step than
  alone (mn04 on the 2-core CPU: 0.42-0.48 s alone, 0.7-1.9 s interleaved, even after a 3-s pause,
  with XLA's threads busy the whole time), which measured the two runtimes' interference, not
  either one. The worker idles on a pipe while the other side runs.
  """
  context = multiprocessing.get_context("spawn")
  parent, child = context.Pipe()
  worker = context.Process(target=serve_steps, daemon=True,
                           args=(child, builder.__name__, arguments, thread_count, retain_memory))
  worker.start()
  reply = parent.recv()
  if isinstance(reply, str):
    raise RuntimeError(f"PyTorch step {builder.__name__} failed in its worker: {reply}")

  def run():
    parent.send(True)
    done = parent.recv()
    if done is not True:
      raise RuntimeError(f"PyTorch step {builder.__name__} failed in its worker: {done}")

  return run, reply


def training_step(model, optimizer, loss_of_batch, clip_norm: float | None = None):
  """One step as upstream's loops run it: train mode, forward and loss (``loss_of_batch()``),
  backward, [gradient-norm clipping], optimiser step, ``zero_grad``."""
  import torch  # pylint: disable=import-outside-toplevel
  parameters = [p for p in model.parameters() if p.requires_grad]

  def run():
    model.train()
    loss = loss_of_batch()
    loss.backward()
    if clip_norm is not None:
      torch.nn.utils.clip_grad_norm_(parameters, clip_norm)
    optimizer.step()
    optimizer.zero_grad()

  return run


def one_hot(labels: np.ndarray, classes: int):
  import torch  # pylint: disable=import-outside-toplevel
  return torch.nn.functional.one_hot(torch.from_numpy(labels).long(), classes).float()


def efficientat(root: pathlib.Path, width: float, clips: np.ndarray, labels: np.ndarray,
                classes: int):
  """EfficientAT's MobileNet (``models.mn.model.get_model``) as its ex_esc50.py trains it.

  The frontend is written here in torch as upstream's AugmentMelSTFT computes it without
  augmentation (pre-emphasis, 1024-point STFT with an 800-sample Hann window, hop 320, 128 Kaldi
  mels, ``(log(x + 1e-5) + 4.5) / 5``), so torchaudio is not needed; it runs inside the step,
  without gradient. Where torchvision cannot be imported, ``conv_norm_activation_shim`` stands in
  for its ``ConvNormActivation``.
  """
  import torch  # pylint: disable=import-outside-toplevel
  from jaxnoise.audio import filterbanks  # pylint: disable=import-outside-toplevel
  try:
    import torchvision.ops.misc  # pylint: disable=import-outside-toplevel,unused-import
  except (ImportError, RuntimeError):
    conv_norm_activation_shim()
  # Upstream reads its label table relative to its root.
  with upstream_imports(root), contextlib.chdir(root):
    from models.mn.model import get_model  # pylint: disable=import-outside-toplevel
    with contextlib.redirect_stdout(io.StringIO()):  # upstream prints the whole network
      model = get_model(num_classes=classes, width_mult=width)
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
  waveforms, targets = torch.from_numpy(clips), torch.from_numpy(labels).long()
  preemphasis = torch.as_tensor([[[-0.97, 1.0]]])
  window = torch.hann_window(800, periodic=False)
  bank = torch.from_numpy(filterbanks.kaldi_mel(32000, 1024, 128, 0.0, 15000.0).T.astype("float32"))

  def mel(x):
    x = torch.nn.functional.conv1d(x.unsqueeze(1), preemphasis).squeeze(1)
    spectrum = torch.stft(x, 1024, hop_length=320, win_length=800, window=window, center=True,
                          return_complex=True)
    return (torch.log(bank @ spectrum.abs().square() + 1e-5) + 4.5) / 5

  def loss_of_batch():
    with torch.no_grad():  # the waveform needs no gradient; upstream's graph holds none either
      features = mel(waveforms).unsqueeze(1)
    logits, _ = model(features)
    return torch.nn.functional.cross_entropy(logits, targets)

  return training_step(model, optimizer, loss_of_batch)


def tfnet_repo(root: pathlib.Path, class_name: str, features: np.ndarray, labels: np.ndarray,
               classes: int):
  """``Cnn`` (the study's CNN10) or ``TFNet`` of the TFNet repository (``util_esc50/net.py``) as
  its ``util_esc50/main.py`` trains a plain batch: ``model(feature)`` with the default
  ``log_softmax`` output, ``losses.nll_loss`` against one-hot targets, Adam (amsgrad, lr 1e-4).

  Upstream trains on log-mels computed offline (numpy/librosa, into an HDF5 file) of shape
  ``[batch, 3, 250, 40]`` whose first channel the network reads; ``features`` ``[batch, 250, 40]``
  (the same normalised log-mel, from jaxnoise's frontend) fill it here, the two delta channels being
  copies of it (the network never reads them). No frontend runs inside this step.
  """
  import torch  # pylint: disable=import-outside-toplevel
  with upstream_imports(pathlib.Path(root) / "util_esc50"):
    import losses  # pylint: disable=import-outside-toplevel
    import net  # pylint: disable=import-outside-toplevel
  with cuda_float_tensor_on_cpu():
    model = getattr(net, class_name)(classes, activation="logsoftmax")
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-08,
                               weight_decay=0.0, amsgrad=True)
  batch = torch.from_numpy(np.repeat(np.asarray(features, np.float32)[:, None], TFNET_CHANNELS,
                                     axis=1))
  targets = one_hot(labels, classes)
  return training_step(model, optimizer, lambda: losses.nll_loss(model(batch), targets))


def panns_cnn10(root: pathlib.Path, clips: np.ndarray, labels: np.ndarray, classes: int):
  """PANNs' ``Cnn10`` (``pytorch/models.py``) as its ``pytorch/main.py`` trains it without mixup:
  ``model(waveform)`` in train mode (torchlibrosa log-mel, ``bn0``, SpecAugment stripes, dropout),
  ``losses.clip_bce`` against one-hot targets, Adam (amsgrad, lr 1e-3).

  Built with the study's TFNet-repo frontend settings (``TFNET_FRONTEND``: 44.1 kHz, window 1764,
  hop 882, 40 mels, 50-11025 Hz) on the same 5-s clips as jaxnoise's CNN10. Upstream hard-codes
  ``bn0 = BatchNorm2d(64)`` (its 64 mel bins), which cannot normalise 40 bins, so ``bn0`` is
  replaced by a fresh ``BatchNorm2d(40)`` (the same initialisation, weight 1 and bias 0).
  """
  import torch  # pylint: disable=import-outside-toplevel
  with upstream_imports(pathlib.Path(root) / "pytorch"):
    import losses  # pylint: disable=import-outside-toplevel
    import models  # pylint: disable=import-outside-toplevel
  model = models.Cnn10(classes_num=classes, **TFNET_FRONTEND)
  model.bn0 = torch.nn.BatchNorm2d(TFNET_FRONTEND["mel_bins"])
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-08,
                               weight_decay=0.0, amsgrad=True)
  waveforms = torch.from_numpy(np.asarray(clips, np.float32))
  targets = {"target": one_hot(labels, classes)}
  return training_step(model, optimizer,
                       lambda: losses.clip_bce(model(waveforms, None), targets))


def htsat_config(root: pathlib.Path, classes: int):
  """Upstream's ``esc_config.py`` (its ESC-50 settings) as a namespace, with ``classes``."""
  with upstream_imports(root):
    import esc_config  # pylint: disable=import-outside-toplevel
  settings = {name: value for name, value in vars(esc_config).items() if not name.startswith("_")}
  return types.SimpleNamespace(**dict(settings, classes_num=classes))


def htsat(root: pathlib.Path, clips: np.ndarray, labels: np.ndarray, classes: int):
  """HTS-AT's ``HTSAT_Swin_Transformer`` (``model/htsat.py``) with its ESC-50 config, trained as
  its ``sed_model.SEDWrapper`` does under PyTorch Lightning (``main.py``): the 5-s clip
  concatenated with itself (``data_generator.ESC_Dataset``, done here once outside the step),
  ``clipwise_output`` of the model in train mode (torchlibrosa log-mel, ``bn0``, SpecAugment
  stripes, bicubic resize to the 256 x 256 image, drop path), ``clip_ce`` (cross entropy) against
  class indices, backward, the Trainer's ``gradient_clip_val=1.0`` (norm), AdamW (lr 1e-3, betas
  (0.9, 0.999), eps 1e-8, weight decay 0.05) at a fixed learning rate (upstream's per-epoch
  factors left out).

  ``model/htsat.py`` imports ``utils``, which imports ``museval`` at top level for evaluation code
  never called here; where museval is not installed an empty module stands in for it.
  """
  import torch  # pylint: disable=import-outside-toplevel
  config = htsat_config(root, classes)
  stub_modules("museval")
  with upstream_imports(root):
    from model.htsat import HTSAT_Swin_Transformer  # pylint: disable=import-outside-toplevel
    from utils import get_loss_func  # pylint: disable=import-outside-toplevel
  model = HTSAT_Swin_Transformer(
      spec_size=config.htsat_spec_size, patch_size=config.htsat_patch_size, in_chans=1,
      num_classes=config.classes_num, window_size=config.htsat_window_size, config=config,
      depths=config.htsat_depth, embed_dim=config.htsat_dim, patch_stride=config.htsat_stride,
      num_heads=config.htsat_num_head)
  loss_func = get_loss_func(config.loss_type)
  optimizer = torch.optim.AdamW(filter(lambda p: p.requires_grad, model.parameters()),
                                lr=config.learning_rate, betas=(0.9, 0.999), eps=1e-08,
                                weight_decay=0.05)
  clips = np.asarray(clips, np.float32)
  waveforms = torch.from_numpy(np.concatenate([clips, clips], axis=1))
  targets = torch.from_numpy(labels).long()
  return training_step(
      model, optimizer,
      lambda: loss_func(model(waveforms, None)["clipwise_output"], targets), clip_norm=1.0)
