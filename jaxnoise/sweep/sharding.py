"""The sweep's ('clips', 'snrs') device mesh over every device of every host.

The sweep's work is a grid of clips x SNRs, so the devices form a 2-D mesh with a 'clips' axis and an
'snrs' axis; each device computes its block of the grid with the same compiled function. Placing
arrays on it and gathering them back is ``jaxnoise.runtime.distributed``.
"""
import jax
import numpy as np
from jax.sharding import Mesh

from jaxnoise.errors import ConfigError
from jaxnoise.runtime.distributed import round_up

CLIP_AXIS = "clips"
SNR_AXIS = "snrs"


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
