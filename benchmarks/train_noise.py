"""Train steps/s of mn04 with and without noise augmentation inside the jitted step.

The same jitted update (jaxnoise.train.steps.make_train_step: frontend, network, Adam) on a batch of
5-second clips at 32 kHz (the shared ESC-50 clips when ../shared is present), once plain and once
with ``config.train.noise_augment`` (probability 0.5, SNR U(-10, 20) dB, white, pink and brown
drawn per clip and step plus the wind and speech recordings of ../shared/data/noise when present):
the noises' band powers, the gains and the mix, all on the device (the clips' band powers are
computed once per run, as the training loop does). Both are timed
interleaved (best of --repeats runs of --steps steps) and the ratio printed, then the augmentation
alone (draws, noise, band powers, mix) per batch. Goal: augmented >= 0.9x plain. Timings are
printed, never asserted.

  python benchmarks/train_noise.py [--batch 16] [--steps 3] [--repeats 3]
"""
import argparse
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from benchmarks import common  # pylint: disable=wrong-import-position
from benchmarks.frontend import load_clips  # pylint: disable=wrong-import-position
from configs import base  # pylint: disable=wrong-import-position
from jaxnoise.models import registry  # pylint: disable=wrong-import-position
from jaxnoise.data import noises as sweep_noises  # pylint: disable=wrong-import-position
from jaxnoise.train import noise_augment, optim, steps  # pylint: disable=wrong-import-position

NOISE_DIR = REPO_ROOT.parent / "shared" / "data" / "noise"


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--steps", type=int, default=3, help="steps per timed run")
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()

  spec = registry.build_spec("mn", {"width": 0.4, "num_classes": 19})
  config = base.get_config()
  config.train.noise_augment.update(dict(enabled=True, probability=0.5, snr_low=-10.0,
                                         snr_high=20.0))
  names = ["white", "pink", "brown"]
  for name, relative in (("wind", "whisp/wind.wav"),
                         ("speech", "swch-audio-classification/speech.wav")):
    if (NOISE_DIR / relative).is_file():
      names.append(f"{name}={NOISE_DIR / relative}")
  pool = sweep_noises.parse_noises(names)
  augmenter = noise_augment.make_augmenter(config.train, spec, pool)
  placement = steps.make_placement()
  bank = placement.replicate(noise_augment.make_bank(augmenter, pool))
  schedule = optim.learning_rate_schedule(config.train, steps_per_epoch=1.0)
  tx = optim.optimizer(config.train, schedule)
  config.train.augment_cycle = ("none",)

  variables = jax.jit(spec.init)(jax.random.key(0))
  params = variables.pop("params")
  clips = load_clips(args.batch, spec.sample_rate)
  waveforms = placement.shard_batch(clips)
  powers = placement.shard_batch(noise_augment.clip_powers(augmenter, clips))
  labels = placement.shard_batch(np.arange(args.batch, dtype=np.int32) % 19)

  def runner(noise):
    step = steps.make_train_step(spec, tx, schedule, config.train, placement,
                                 augmenter if noise else None)

    def fresh_state():
      # Copies: the step donates its state, which must not consume the shared variables.
      return placement.replicate(jax.tree.map(jnp.copy, {
          "step": jnp.zeros((), jnp.int32), "params": params, "model_state": dict(variables),
          "opt_state": tx.init(params)}))

    def run():
      state = fresh_state()
      for index in range(args.steps):
        state, metrics = step(state, waveforms, labels, jax.random.key(index), False, False,
                              *((bank, powers) if noise else ()))
      jax.block_until_ready(metrics)
    return run

  print(f"mn04 train step, batch {args.batch} x 5 s at {spec.sample_rate} Hz, "
        f"{jax.devices()[0].platform} backend, {placement.size} device(s); noise pool "
        f"{', '.join(augmenter.names)}")
  best = common.interleaved_best({"plain step": runner(False),
                                  "with noise augmentation": runner(True)},
                                 repeats=args.repeats)
  common.print_table("train steps", list(best.items()), "plain step", args.steps,
                     unit_name="steps")
  print(f"\naugmented / plain step rate: {best['plain step'] / best['with noise augmentation']:.3f}"
        " (goal >= 0.9)")
  mix = jax.jit(augmenter)
  alone = common.best_seconds(
      lambda: jax.block_until_ready(mix(jax.random.key(0), waveforms, bank, powers)), args.repeats)
  print(f"noise augmentation alone: {1e3 * alone:.0f} ms per batch, "
        f"{alone / (best['plain step'] / args.steps):.1%} of a plain step")


if __name__ == "__main__":
  main()
