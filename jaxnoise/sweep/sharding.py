"""Spreading the sweep over every device of every host with ``jax.sharding``.

The sweep's work is a grid of clips x SNRs, so the devices form a 2-D mesh with a 'clips' axis and an
'snrs' axis; each device computes its block of the grid with the same compiled function. On several
hosts (``config.distributed.initialize``), every process runs the same program on the same inputs (the
clips are small next to the work done on them), contributes the shards of its own devices, and gathers
the finished block so that process 0 can write the tables.
"""
import math

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxnoise.errors import ConfigError

CLIP_AXIS = "clips"
SNR_AXIS = "snrs"


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


def snr_devices_for(num_devices: int, num_snrs: int, chunk_clips: int) -> int:
  """Devices along the SNR axis that waste the least padding (ties go to the clip axis).

  A chunk of ``chunk_clips`` clips is padded to a multiple of the clip-axis size and the SNR grid to
  a multiple of the SNR-axis size; this picks the split with the fewest padded mixes per chunk.
  """
  divisors = [d for d in range(1, num_devices + 1) if num_devices % d == 0]
  return min(divisors, key=lambda d: (round_up(num_snrs, d) * round_up(chunk_clips,
                                                                       num_devices // d), d))


def make_mesh(num_snrs: int, snr_devices: int = 0, chunk_clips: int = 16) -> Mesh:
  """A ('clips', 'snrs') mesh over all devices of all processes.

  Args:
    num_snrs: length of the SNR grid, used to pick the SNR-axis size when ``snr_devices`` is 0.
    snr_devices: devices along the SNR axis; must divide the device count. 0 = automatic.
    chunk_clips: clips per compiled call, for the automatic choice.
  """
  devices = np.asarray(jax.devices())
  if snr_devices <= 0:
    snr_devices = snr_devices_for(devices.size, num_snrs, chunk_clips)
  if devices.size % snr_devices:
    raise ConfigError(f"config.sweep.snr_devices={snr_devices} does not divide the "
                      f"{devices.size} devices")
  return Mesh(devices.reshape(devices.size // snr_devices, snr_devices), (CLIP_AXIS, SNR_AXIS))


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
