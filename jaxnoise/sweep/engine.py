"""The sweep's compiled step: noise gain, mixing, frontend, network and decision at every SNR.

For a chunk of clean clips ``[clips, samples]`` with their in-band powers ``[clips]``, a noise
``[noises, samples]`` with its in-band power ``[noises]`` and an SNR grid ``[snrs]``, one jitted call
computes (per device, on its block of clips and SNRs)::

  alpha = sqrt(P_x * 10^(-snr/10) / P_n0)      jaxnoise.noise.noise_gain, silent clips get 0
  noisy = clean + alpha * noise                 noise broadcast: noises = 1 (one realisation mixed
                                                into every clip) or noises = clips (one per clip)
  scores = readout(spec.scores(network(frontend(noisy))))
  predicted = argmax(scores)                    [clips, snrs]

``jax.vmap`` over the SNR axis turns the per-SNR function into one batched network call of
clips x SNRs (or, with ``snr_batch``, into calls of a few SNRs each in sequence, which a CPU runs
faster), and the clip chunk bounds its memory whatever the grid size. ``shard_map`` gives every
device of the ('clips', 'snrs') mesh its own block; chunks are padded to the mesh (zero clips, the
last SNR repeated) and the padding is dropped before anything is returned.
"""
import collections
import concurrent.futures
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jaxnoise.noise import band_power, colored_noise_batch, noise_gain
from jaxnoise.runtime import distributed
from jaxnoise.sweep.sharding import CLIP_AXIS, SNR_AXIS

# Compiled calls running at once. On the 2-core CPU, calls from two threads took mn04's sweep from 179
# to 270 clips x SNRs per second (benchmarks/sweep.py, separate runs) and the quickstart from 150 s
# to 120 s; accelerators queue the calls anyway.
CALLS_IN_FLIGHT = 2


def model_input(spec, waveform: jax.Array) -> jax.Array:
  """Noisy ESC-50 clips ``[batch, samples]`` as the model takes them: ``spec.fit_file``'s rule on
  a batch. Noise is mixed at the clip's own length (the study's order); a model trained on longer
  clips then gets them zero-padded where ``spec.pad_short_clips``, or left to its frontend, which
  extends them the upstream way (HTS-AT repeats them)."""
  missing = spec.clip_samples - waveform.shape[-1]
  if spec.pad_short_clips and missing > 0:
    return jnp.pad(waveform, [(0, 0)] * (waveform.ndim - 1) + [(0, missing)])
  return waveform


def window_scores(spec, variables, noisy: jax.Array, clean: jax.Array, window_samples: int):
  """``(scores, logits)`` ``[batch, outputs]`` of ``noisy`` ``[batch, k * window_samples]``: the
  mean over its consecutive windows (``clip_policy='windows'``), leaving out the windows where the
  clean clip is all zeros (the padding after a file shorter than the longest of its set)."""
  batch = noisy.shape[0]
  windows = model_input(spec, noisy.reshape(-1, window_samples))
  logits = spec.apply(variables, windows, train=False)["logits"]
  logits = logits.reshape(batch, -1, logits.shape[-1])
  real = jnp.any(clean.reshape(batch, -1, window_samples) != 0, axis=-1)
  # A silent clip has no real window: it is classified on all of them (as its noisy copies are).
  weights = jnp.where(jnp.any(real, axis=1, keepdims=True), real, True).astype(logits.dtype)
  weights = weights / jnp.sum(weights, axis=1, keepdims=True)
  scores = jnp.einsum("bw,bwc->bc", weights, spec.scores(logits))
  return scores, jnp.einsum("bw,bwc->bc", weights, logits)


def noisy_predictions(spec, readout, variables, clean, clean_power, noise, noise_power, snrs,
                      *, with_logits: bool = False, snr_batch: int = 0, window_samples: int = 0):
  """Predictions for every clip at every SNR (pure; what each device runs on its block).

  Args:
    spec: the ModelSpec.
    readout: a ``jaxnoise.sweep.readout.Readout`` (model outputs -> tested classes).
    variables: the model's Flax variables.
    clean: ``[clips, samples]`` at ``spec.sample_rate``.
    clean_power: ``[clips]`` in-band powers of ``clean``.
    noise: ``[noises, samples]`` with noises = 1 or clips.
    noise_power: ``[noises]`` in-band powers of ``noise``.
    snrs: ``[snrs]`` target SNRs in dB; +inf gives the clean clip exactly (alpha = 0).
    with_logits: also return the network's logits.
    snr_batch: SNRs per network call; 0 = all at once (one vmap). Smaller values run groups of
      ``snr_batch`` SNRs (each group vmapped) one after another with ``lax.map``: the same result
      with smaller activations, which keeps a CPU's caches warm (large batches run slower there).
    window_samples: 0, or the window length of ``clip_policy='windows'`` (``window_scores``);
      ``samples`` is then a multiple of it.

  Returns:
    ``{'predicted': [clips, snrs] int32}`` (positions in ``readout.target_ids``), plus
    ``'logits': [clips, snrs, outputs]`` if asked.
  """
  def at_snr(snr):
    gains = noise_gain(clean_power, noise_power, snr).astype(clean.dtype)
    noisy = clean + gains[:, None] * noise
    if window_samples:
      scores, logits = window_scores(spec, variables, noisy, clean, window_samples)
    else:
      logits = spec.apply(variables, model_input(spec, noisy), train=False)["logits"]
      scores = spec.scores(logits)
    scores = readout.class_scores(scores)
    return jnp.argmax(scores, axis=-1).astype(jnp.int32), logits

  snrs = snrs.astype(clean.dtype)
  if 0 < snr_batch < snrs.shape[0]:
    predicted, logits = jax.lax.map(at_snr, snrs, batch_size=snr_batch)
    predicted, logits = jnp.moveaxis(predicted, 0, 1), jnp.moveaxis(logits, 0, 1)
  else:
    predicted, logits = jax.vmap(at_snr, out_axes=1)(snrs)
  outputs = {"predicted": predicted}
  if with_logits:
    outputs["logits"] = logits
  return outputs


class SweepEngine:
  """The compiled sweep of one model over a fixed set of clips, on a device mesh.

  The clean clips and their powers are put on the devices once, in chunks of ``chunk_clips``
  (rounded up to the mesh's clip axis); every noise unit then streams over those chunks.

  Args:
    spec, readout, variables: the model and its decision rule.
    clips: ``[clips, samples]`` host array of clean clips at ``spec.sample_rate``.
    mesh: a ('clips', 'snrs') mesh (``sharding.make_mesh``).
    chunk_clips: clips per compiled call.
    with_logits: also return logits.
    snr_batch: SNRs per network call (``noisy_predictions``); 0 = all.
    window_samples: 0, or the window of ``clip_policy='windows'`` (``window_scores``).
  """

  def __init__(self, spec, readout, variables, clips: np.ndarray, mesh, *, chunk_clips: int,
               with_logits: bool = False, snr_batch: int = 0, window_samples: int = 0):
    self.spec, self.readout, self.mesh = spec, readout, mesh
    self.window_samples = window_samples
    self.with_logits = with_logits
    self.snr_batch = snr_batch
    self.num_clips, self.num_samples = clips.shape
    self.chunk = distributed.round_up(max(1, min(chunk_clips, self.num_clips)),
                                   mesh.shape[CLIP_AXIS])
    replicated = PartitionSpec()
    self.variables = jax.tree.map(lambda leaf: distributed.put(np.asarray(leaf), mesh, replicated),
                                  variables)
    self.clip_chunks = []
    self.power_chunks = []
    power = jax.jit(functools.partial(band_power, sample_rate=spec.sample_rate, band=spec.band))
    for start in range(0, self.num_clips, self.chunk):
      block = self.pad_clips(clips[start:start + self.chunk])
      on_device = distributed.put(block, mesh, PartitionSpec(CLIP_AXIS, None))
      self.clip_chunks.append(on_device)
      self.power_chunks.append(power(on_device))
    self._steps = {}
    self._colored = {}

  @property
  def num_chunks(self) -> int:
    return len(self.clip_chunks)

  def chunk_slice(self, index: int) -> slice:
    """The rows of the full clip list that chunk ``index`` holds."""
    return slice(index * self.chunk, min((index + 1) * self.chunk, self.num_clips))

  def pad_clips(self, block: np.ndarray) -> np.ndarray:
    """Pads a ``[n, ...]`` host block with zero rows to the chunk size (silent clips get no noise
    and their rows are dropped)."""
    missing = self.chunk - block.shape[0]
    return np.pad(block, [(0, missing)] + [(0, 0)] * (block.ndim - 1)) if missing else block

  def clip_powers(self) -> np.ndarray:
    """``[clips]`` in-band powers of the clean clips (host copy)."""
    powers = [distributed.fetch(power) for power in self.power_chunks]
    return np.concatenate(powers)[:self.num_clips]

  def step(self, per_clip_noise: bool):
    """The jitted, sharded step for a noise of 1 row (``per_clip_noise=False``) or a row per clip."""
    if per_clip_noise not in self._steps:
      noise_spec = PartitionSpec(CLIP_AXIS, None) if per_clip_noise else PartitionSpec(None, None)
      noise_power_spec = PartitionSpec(CLIP_AXIS) if per_clip_noise else PartitionSpec(None)
      out_specs = {"predicted": PartitionSpec(CLIP_AXIS, SNR_AXIS)}
      if self.with_logits:
        out_specs["logits"] = PartitionSpec(CLIP_AXIS, SNR_AXIS, None)
      local = functools.partial(noisy_predictions, self.spec, self.readout,
                                with_logits=self.with_logits, snr_batch=self.snr_batch,
                                window_samples=self.window_samples)
      self._steps[per_clip_noise] = jax.jit(jax.shard_map(
          local, mesh=self.mesh,
          in_specs=(PartitionSpec(), PartitionSpec(CLIP_AXIS, None), PartitionSpec(CLIP_AXIS),
                    noise_spec, noise_power_spec, PartitionSpec(SNR_AXIS)),
          out_specs=out_specs, check_vma=False))
    return self._steps[per_clip_noise]

  def put_snrs(self, snrs) -> tuple[jax.Array, int]:
    """The SNR grid padded (last value repeated) to the mesh's SNR axis, on the devices."""
    snrs = np.asarray(snrs, np.float32).reshape(-1)
    padded = distributed.round_up(snrs.size, self.mesh.shape[SNR_AXIS])
    snrs = np.concatenate([snrs, np.repeat(snrs[-1:], padded - snrs.size)])
    return distributed.put(snrs, self.mesh, PartitionSpec(SNR_AXIS)), padded

  def put_replicated(self, array: np.ndarray) -> jax.Array:
    """A host array copied to every device (a nominal noise ``[1, samples]``, its power)."""
    return distributed.put(array, self.mesh, PartitionSpec())

  def put_per_clip(self, block: np.ndarray) -> jax.Array:
    """A host block of per-clip rows ``[n <= chunk, ...]``, padded and split over the clip axis."""
    block = self.pad_clips(block)
    return distributed.put(block, self.mesh, PartitionSpec(CLIP_AXIS, *([None] * (block.ndim - 1))))

  def noise_power(self, noise: jax.Array) -> jax.Array:
    """``[noises]`` in-band powers of a noise already on the devices."""
    return band_power(noise, self.spec.sample_rate, self.spec.band)

  def colored_per_clip(self, key: jax.Array, numbers: np.ndarray, color: str,
                       generator: str = "psd") -> jax.Array:
    """``[chunk, samples]`` colored noise generated on the devices, row i from
    ``fold_in(key, numbers[i])``, already split over the clip axis."""
    if (color, generator) not in self._colored:
      def generate(key_data, numbers):
        base = jax.random.wrap_key_data(key_data)
        keys = jax.vmap(lambda number: jax.random.fold_in(base, number))(numbers)
        return colored_noise_batch(keys, self.num_samples, color, generator=generator)
      self._colored[color, generator] = jax.jit(
          generate, out_shardings=NamedSharding(self.mesh, PartitionSpec(CLIP_AXIS, None)))
    key_data = self.put_replicated(np.asarray(jax.random.key_data(key)))
    return self._colored[color, generator](key_data, self.put_per_clip(np.asarray(numbers, np.uint32)))

  def run(self, noise_for_chunk, snrs, *, per_clip_noise: bool, on_chunk=None):
    """Predictions of every clip at every SNR for one noise unit.

    Args:
      noise_for_chunk: ``noise_for_chunk(chunk_index) -> (noise, noise_power)`` device arrays as
        ``put_replicated``/``put_per_clip``/``noise_power`` make them (the same pair for every chunk when the noise is one
        nominal realisation).
      snrs: the SNR grid in dB.
      per_clip_noise: whether the noise has a row per clip.
      on_chunk: ``on_chunk(clips)`` after each chunk's results reached the host (progress).

    Returns:
      ``(predicted [clips, snrs] int array, logits [clips, snrs, outputs] or None)`` on the host.
    """
    step = self.step(per_clip_noise)
    snr_array, _ = self.put_snrs(snrs)
    num_snrs = np.asarray(snrs).size
    predicted, logits, pending = [], [], collections.deque()

    def compute(index, noise, noise_power):
      outputs = step(self.variables, self.clip_chunks[index], self.power_chunks[index], noise,
                     noise_power, snr_array)
      rows = self.chunk_slice(index).stop - self.chunk_slice(index).start
      return rows, {name: distributed.fetch(value)[:rows, :num_snrs]
                    for name, value in outputs.items()}

    def collect():
      rows, outputs = pending.popleft().result()
      predicted.append(outputs["predicted"])
      if self.with_logits:
        logits.append(outputs["logits"])
      if on_chunk is not None:
        on_chunk(rows)

    # CALLS_IN_FLIGHT chunks at a time, each called and fetched from a thread of its own: XLA:CPU
    # runs calls from different threads side by side, while calls queued by one thread run one
    # after another; memory stays flat. Across hosts one thread keeps every host's gathers
    # (``distributed.fetch``) in the same order.
    threads = CALLS_IN_FLIGHT if jax.process_count() == 1 else 1
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
      for index in range(self.num_chunks):
        noise, noise_power = noise_for_chunk(index)
        pending.append(pool.submit(compute, index, noise, noise_power))
        if len(pending) >= CALLS_IN_FLIGHT:
          collect()
      while pending:
        collect()
    return (np.concatenate(predicted),
            np.concatenate(logits) if self.with_logits else None)
