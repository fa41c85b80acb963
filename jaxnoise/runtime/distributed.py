"""Devices of every host: multi-host start-up, and moving arrays between hosts and a mesh.

On several hosts (``config.distributed.initialize``) every process runs the same program on the same
inputs, contributes the shards of its own devices, and gathers results so that process 0 can write
the files. Both stages place their data with these functions (the sweep on a ('clips', 'snrs') mesh,
training on a 'data' mesh).
"""
import logging
import os

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxnoise.errors import ConfigError


def use_cpu_devices(count: int) -> None:
  """Splits the host CPU into ``count`` XLA devices (``config.train.cpu_devices``; 0: JAX's choice).

  XLA:CPU runs a device's element-wise passes, reductions and copies on one thread, and only its
  matrix products and convolutions on all cores; with one device per core the batch is split and
  each half's passes run at once (measured on the 2-core CPU: training steps 1.23x (cnn10) and 1.20x
  (htsat) as fast with 2 devices, mn04's 0.8x; sweeps 0.91-0.97x, so only training sets it).
  Statistics over the batch (BatchNorm, losses) stay those of the whole batch: the split is data
  parallelism inside one program.
  Takes effect only before JAX's first computation in the process, and not over an explicit
  ``--xla_force_host_platform_device_count`` in ``XLA_FLAGS``; call it before ``initialize``, which
  must also come first.
  """
  if count > 0 and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    try:
      jax.config.update("jax_num_cpu_devices", int(count))
    except RuntimeError:  # JAX has started in this process (tests, notebooks): keep its devices
      logging.warning("config.train.cpu_devices=%d not applied: JAX already runs with %d CPU "
                      "device(s) in this process", count, len(jax.devices("cpu")))


def initialize(distributed_config):
  """``jax.distributed.initialize`` when the config asks for it; a no-op otherwise.

  Empty/negative values are left for JAX to detect (SLURM, TPU pods, ...); explicit values (the
  coordinator's ``host:port``, the process count and this process's id) serve plain clusters and the
  localhost test.
  """
  if not distributed_config.initialize:
    return
  kwargs = {}
  if distributed_config.coordinator_address:
    kwargs["coordinator_address"] = distributed_config.coordinator_address
  if distributed_config.num_processes > 0:
    kwargs["num_processes"] = distributed_config.num_processes
  if distributed_config.process_id >= 0:
    kwargs["process_id"] = distributed_config.process_id
  if jax.distributed.is_initialized():
    return
  try:
    jax.distributed.initialize(**kwargs)
  except (RuntimeError, ValueError) as error:
    raise ConfigError(f"jax.distributed.initialize({kwargs}) failed: {error}; check "
                      "config.distributed.coordinator_address/num_processes/process_id") from None


def round_up(value: int, multiple: int) -> int:
  return -(-value // multiple) * multiple


def put(host_array: np.ndarray, mesh: Mesh, spec: PartitionSpec) -> jax.Array:
  """A global array laid out as ``spec`` from ``host_array``, which every process holds in full.

  Each process fills only the shards of its own devices, which is all multi-host JAX needs.
  """
  host_array = np.asarray(host_array)
  sharding = NamedSharding(mesh, spec)
  return jax.make_array_from_callback(host_array.shape, sharding, lambda index: host_array[index])


def fetch(array: jax.Array) -> np.ndarray:
  """The whole of a (possibly multi-host) global array as numpy, on every process."""
  if jax.process_count() == 1:
    return np.asarray(array)
  return np.asarray(multihost_utils.process_allgather(array, tiled=True))


def agree(flags: np.ndarray) -> np.ndarray:
  """Process 0's ``flags`` on every process (e.g. which units are already done), so all hosts run
  the same units even if their views of the filesystem differ."""
  if jax.process_count() == 1:
    return np.asarray(flags)
  return np.asarray(multihost_utils.broadcast_one_to_all(np.asarray(flags)))


def is_writer() -> bool:
  """Only process 0 writes files."""
  return jax.process_index() == 0
