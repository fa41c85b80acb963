"""Decisions of the quickstart model in each precision mode against 'highest', on the shared clips.

The quickstart config's model (EfficientAT's real mn04_as, zero-shot on the ESC-19 classes) runs the
sweep engine on every clip the quickstart tests, with one noise at the study's 13 SNRs, once per
``config.sweep.precision``; printed is the share of (clip, SNR) decisions identical to those of
'highest', and the largest logit difference. On a CPU 'default' computes exactly what 'highest'
does; 'bfloat16' is what an accelerator's bfloat16 path would change (the same arithmetic on any
backend, up to the order of sums). tests/test_precision.py asserts the same numbers.

  python benchmarks/precision.py [--noise pink] [--cache-dir DIR]
"""
import argparse
import dataclasses
import pathlib
import sys

import jax
import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from configs import quickstart  # pylint: disable=wrong-import-position
from jaxnoise.data import clips as clip_loading  # pylint: disable=wrong-import-position
from jaxnoise.models import precision as precision_lib  # pylint: disable=wrong-import-position
from jaxnoise.sweep import engine as engine_lib  # pylint: disable=wrong-import-position
from jaxnoise.sweep import model as model_lib  # pylint: disable=wrong-import-position
from jaxnoise.data import noises as noise_lib  # pylint: disable=wrong-import-position
from jaxnoise.sweep import readout as readout_lib  # pylint: disable=wrong-import-position
from jaxnoise.sweep import run as sweep_run  # pylint: disable=wrong-import-position
from jaxnoise.sweep import sharding  # pylint: disable=wrong-import-position


def sweep_decisions(config, noise: str) -> dict:
  """``{precision: (predicted [clips, snrs], logits [clips, snrs, outputs])}`` of the quickstart
  model on the quickstart's clips, one noise, ``config.sweep.snrs``, for every precision mode."""
  inputs = sweep_run.resolve_inputs(config)
  swept = model_lib.load_checkpoint_model(config)
  spec = swept.spec
  readout = readout_lib.make_readout(spec.labels, inputs.label_names, inputs.target_ids,
                                     inputs.label_map)
  clips = clip_loading.load_set([record.path for record in inputs.tested], spec,
                                config.data.clip_policy, config.data.cache_dir)
  snrs = tuple(float(snr) for snr in config.sweep.snrs)
  mesh = sharding.make_mesh(len(snrs), 0, int(config.sweep.chunk_clips))
  unit = noise_lib.Unit(noise_lib.NoiseType(noise, color=noise))
  results = {}
  for name in precision_lib.PRECISIONS:
    snr_batch = sweep_run.snr_batch_for(-1, jax.devices()[0].platform,
                                        int(config.sweep.chunk_clips))
    engine = engine_lib.SweepEngine(dataclasses.replace(spec, precision=name), readout,
                                    swept.variables, clips, mesh,
                                    chunk_clips=int(config.sweep.chunk_clips),
                                    snr_batch=snr_batch, with_logits=True)
    maker = noise_lib.NoiseMaker(engine, [r.filename for r in inputs.tested], int(config.seed),
                                 False)
    noise_for_chunk, per_clip = maker.for_unit(unit)
    results[name] = engine.run(noise_for_chunk, snrs, per_clip_noise=per_clip)
  return results


def agreement(results: dict) -> dict:
  """``{precision: (share of decisions equal to 'highest', max |logit - highest logit|)}``."""
  reference, reference_logits = results["highest"]
  return {name: (float(np.mean(predicted == reference)),
                 float(np.max(np.abs(logits - reference_logits))))
          for name, (predicted, logits) in results.items()}


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--noise", default="pink", help="a colored noise (white, pink, ...)")
  parser.add_argument("--cache-dir", default=None, help="config.data.cache_dir (converted model)")
  args = parser.parse_args()
  config = quickstart.get_config()
  if args.cache_dir:
    config.data.cache_dir = args.cache_dir
  results = sweep_decisions(config, args.noise)
  clips, snrs = results["highest"][0].shape
  print(f"\n{config.model.name}, {args.noise} noise, {clips} clips x {snrs} SNRs, "
        f"{jax.devices()[0].platform}")
  for name, (share, logit_difference) in agreement(results).items():
    print(f"  {name:<9} {share:8.2%} of decisions identical to 'highest' "
          f"({round(share * clips * snrs)} of {clips * snrs}); max |logit difference| "
          f"{logit_difference:.3g}")


if __name__ == "__main__":
  main()
