"""Noise augmentation in the train step: SNRs re-measured with scipy, p = 0, seeds, leakage, resume.

The tiny model and tone dataset of test_train (8 kHz model rate, band 50-3500 Hz) keep training
fast; the pool mixes colors with a short recording (written here, 1.3 s at 22.05 kHz, so it is
resampled and looped).
"""
import collections
import csv
import json
import shutil
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.signal
import soundfile

from conftest import run_on_cpu_devices
from jaxnoise import config_checks, preflight
from jaxnoise.errors import ConfigError
from jaxnoise.noise import colored
from jaxnoise.train import loop, noise_augment
from test_train import (TESTS_DIR, Interrupt, assert_trees_equal, make_tone_dataset,
                        restored_variables, tiny_config, tiny_spec)


@pytest.fixture(scope="module")
def tone_root(tmp_path_factory):
  return make_tone_dataset(tmp_path_factory.mktemp("tones") / "esc50")


@pytest.fixture(scope="module")
def hum_file(tmp_path_factory):
  """A 1.3-s recording at 22.05 kHz: a 220 Hz hum with harmonics plus a little noise."""
  rate = 22050
  t = np.arange(int(1.3 * rate)) / rate
  rng = np.random.default_rng(3)
  hum = sum(0.2 / k * np.sin(2 * np.pi * 220 * k * t) for k in range(1, 6))
  path = tmp_path_factory.mktemp("noise") / "hum.wav"
  soundfile.write(path, hum + 0.02 * rng.standard_normal(t.size), rate, subtype="FLOAT")
  return path


def augmented_config(root, cache, hum, **settings):
  config = tiny_config(root, cache, steps=8, checkpoint_every=4, eval_every=0)
  config.sweep.noises = ("white",)
  config.train.noise_augment.update(dict(enabled=True, probability=0.75, snr_low=-5.0,
                                         snr_high=15.0, noises=("pink", "brown", f"hum={hum}"),
                                         weights=(1.0, 1.0, 2.0)))
  config.train.noise_augment.update(settings)
  return config


def scipy_band_power(x, rate, band):
  """The study's in-band power (float64 scipy periodogram + trapezoid)."""
  frequencies, density = scipy.signal.periodogram(np.asarray(x, np.float64), rate)
  low = np.argmax(frequencies > band[0]) - 1
  high = np.argmax(frequencies > band[1]) - 1
  return scipy.integrate.trapezoid(density[low:high], frequencies[low:high])


def augmenter_and_bank(config, spec):
  pool = noise_augment.resolve_pool(config)
  augmenter = noise_augment.make_augmenter(config.train, spec, pool)
  return augmenter, jax.tree.map(jnp.asarray, noise_augment.make_bank(augmenter, pool))


def test_every_augmented_clip_has_its_drawn_snr_in_band(tone_root, tmp_path, hum_file):
  config = augmented_config(tone_root, tmp_path / "cache", hum_file)
  spec = tiny_spec()
  augmenter, bank = augmenter_and_bank(config, spec)
  rng = np.random.default_rng(0)
  t = np.arange(spec.clip_samples) / spec.sample_rate
  clips = np.stack([0.3 * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal(t.size)
                    for f in np.linspace(200, 3000, 32)]).astype(np.float32)
  # The key the train step of step 5 derives for the noise (steps.make_train_step).
  key = jax.random.fold_in(jax.random.fold_in(jax.random.key(7), 5), noise_augment.NOISE_STREAM)
  # The clip powers the loop computes once per run, as the step receives them.
  powers = jnp.asarray(noise_augment.clip_powers(augmenter, clips))
  noisy, draws = jax.jit(augmenter)(key, jnp.asarray(clips), bank, powers)
  noisy, draws = np.asarray(noisy), jax.tree.map(np.asarray, draws)
  applied = draws["applied"]
  assert 16 <= applied.sum() < 32  # p = 0.75 of 32 clips
  assert set(draws["noise"][applied]) == {0, 1, 2}
  assert np.all((draws["snr_db"] >= -5) & (draws["snr_db"] <= 15))
  np.testing.assert_array_equal(noisy[~applied], clips[~applied])
  errors = []
  for clip, mixed, snr in zip(clips[applied], noisy[applied], draws["snr_db"][applied]):
    added = mixed.astype(np.float64) - clip
    measured = 10 * np.log10(scipy_band_power(clip, spec.sample_rate, spec.band)
                             / scipy_band_power(added, spec.sample_rate, spec.band))
    errors.append(abs(measured - snr))
  # Float32 mixing re-measured in float64: the worst error measured was 2.1e-6 dB.
  print(f"max in-band SNR error over {len(errors)} clips: {max(errors):.2e} dB")
  assert max(errors) < 0.01, max(errors)
  # A recording's noise is its loop cropped from the drawn start.
  hum = np.asarray(bank["waves"][0, :int(bank["lengths"][0])])
  looped = np.tile(hum, 3 + spec.clip_samples // hum.size)
  for row in np.flatnonzero(applied & (draws["noise"] == 2)):
    start = int(draws["start"][row])
    expected = draws["gain"][row] * looped[start:start + spec.clip_samples]
    np.testing.assert_allclose(noisy[row] - clips[row], expected, atol=2e-6)


def test_colored_noise_follows_the_generator_recipe():
  """The in-step colors are jaxnoise.noise.colored's recipe applied to the white noise whose rfft
  the step draws directly (Nyquist bin real and scaled by sqrt(2), as make_bank's gains do)."""
  length = 4000
  spectrum = noise_augment.white_spectrum(jax.random.key(1), 1, length)
  nyquist = np.ones(length // 2 + 1, np.float32)
  nyquist[-1] = np.sqrt(2.0)
  white = jnp.fft.irfft(spectrum[0] * nyquist, n=length)
  for name, exponent in colored.COLOR_EXPONENTS.items():
    gains = jnp.asarray(colored.spectral_gains(length, exponent) * nyquist, jnp.float32)
    np.testing.assert_allclose(noise_augment.colored_from_spectrum(spectrum, gains[None], length)[0],
                               colored.shape_spectrum(white, exponent), atol=2e-5, err_msg=name)
  # White Gaussian noise: every sample has the same variance, the Nyquist bin included.
  many = jnp.fft.irfft(noise_augment.white_spectrum(jax.random.key(2), 4000, 64) * nyquist[:33],
                       n=64)
  variance = np.asarray(jnp.var(many, axis=0))
  np.testing.assert_allclose(variance, variance.mean(), rtol=0.1)


def test_draws_follow_the_key(tone_root, tmp_path, hum_file):
  config = augmented_config(tone_root, tmp_path / "cache", hum_file)
  augmenter, bank = augmenter_and_bank(config, tiny_spec())
  clips = jnp.asarray(np.random.default_rng(1).standard_normal((8, 40000)), jnp.float32)
  first = jax.jit(augmenter)(jax.random.key(3), clips, bank)
  again = jax.jit(augmenter)(jax.random.key(3), clips, bank)
  other = jax.jit(augmenter)(jax.random.key(4), clips, bank)
  assert_trees_equal(first, again)
  assert not np.array_equal(first[1]["snr_db"], other[1]["snr_db"])
  # A model taking longer clips gets the 5-s clip mixed and its zero padding left silent.
  padded = jnp.pad(clips, ((0, 0), (0, 4000)))
  longer, _ = jax.jit(augmenter)(jax.random.key(3), padded, bank)
  np.testing.assert_array_equal(longer[:, :40000], first[0])
  np.testing.assert_array_equal(longer[:, 40000:], 0.0)


def test_probability_zero_trains_exactly_as_the_plain_step(tone_root, tmp_path, hum_file):
  plain = tiny_config(tone_root, tmp_path / "cache", steps=4, checkpoint_every=4, eval_every=0)
  loop.train(plain, tmp_path / "plain", spec=tiny_spec())
  silent = augmented_config(tone_root, tmp_path / "cache", hum_file, probability=0.0)
  silent.train.steps = 4
  loop.train(silent, tmp_path / "p0", spec=tiny_spec())
  assert_trees_equal(restored_variables(tmp_path / "plain/fold1/model"),
                     restored_variables(tmp_path / "p0/fold1/model"))


@pytest.mark.slow  # three tiny trainings, about a minute on 2 cores
def test_augmented_run_resumes_bit_for_bit_and_records_its_draws(tone_root, tmp_path, hum_file):
  config = augmented_config(tone_root, tmp_path / "cache", hum_file)
  loop.train(config, tmp_path / "a", spec=tiny_spec())

  def kill_at_step_6(fold, step, metrics):
    if step == 6:
      raise Interrupt()

  with pytest.raises(Interrupt):
    loop.train(config, tmp_path / "b", spec=tiny_spec(), step_callback=kill_at_step_6)
  loop.train(config, tmp_path / "b", spec=tiny_spec())
  trained = restored_variables(tmp_path / "a/fold1/model")
  assert_trees_equal(trained, restored_variables(tmp_path / "b/fold1/model"))
  # The noise changed what was learnt, and the model says how it was trained.
  plain = tiny_config(tone_root, tmp_path / "cache", steps=8, checkpoint_every=4, eval_every=0)
  loop.train(plain, tmp_path / "plain", spec=tiny_spec())
  assert not np.array_equal(trained["params"]["Dense_0"]["kernel"],
                            restored_variables(tmp_path / "plain/fold1/model")["params"]["Dense_0"]
                            ["kernel"])
  source = json.loads((tmp_path / "a/fold1/model/config.json").read_text())["source"]
  described = source["noise_augment"]
  assert described["probability"] == 0.75 and described["snr_db"] == [-5.0, 15.0]
  assert [n["name"] for n in described["noises"]] == ["pink", "brown", "hum"]
  assert [n["weight"] for n in described["noises"]] == pytest.approx([0.25, 0.25, 0.5])
  assert "fold_in(step key" in described["random_draws"]


def test_training_noise_that_the_sweep_tests_with_is_refused(tone_root, tmp_path, noise_dir):
  clip = noise_dir / "esc50" / "4-192236-A-0.wav"  # one of the sweep's esc50:dog clips
  config = tiny_config(tone_root, tmp_path / "cache")
  config.sweep.noises = ("white", "esc50:dog")
  config.sweep.esc50_noise_dirs = (str(noise_dir / "esc50"),)
  config.train.noise_augment.update(dict(enabled=True, noises=("pink", f"barks={clip}")))
  with pytest.raises(ConfigError, match=r"training noise 'barks' uses .*4-192236-A-0\.wav, which "
                                        r"the sweep also tests with \(noise 'esc50:dog'"):
    preflight.check_config(config, ("train",))
  # A copy under another folder is the same ESC-50 clip.
  copy = tmp_path / "copies" / clip.name
  copy.parent.mkdir()
  shutil.copy(clip, copy)
  config.train.noise_augment.noises = (f"barks={copy.parent}",)
  with pytest.raises(ConfigError, match="4-192236-A-0.wav, which the sweep also tests with"):
    preflight.check_config(config, ("train",))
  config.train.noise_augment.allow_overlap = True
  preflight.check_config(config, ("train",))
  # The default pool (colors) and recordings the sweep does not use pass.
  config.train.noise_augment.update(dict(allow_overlap=False, noises=(
      "white", "pink", "brown", f"wind={noise_dir / 'whisp' / 'wind.wav'}")))
  preflight.check_config(config, ("train",))


@pytest.mark.parametrize("settings, message", [
    ({"probability": 1.5}, r"config.train.noise_augment.probability must lie in \[0, 1\].*1.5"),
    ({"probability": -0.1}, r"config.train.noise_augment.probability must be a finite number"),
    ({"snr_low": 10.0, "snr_high": 0.0},
     r"config.train.noise_augment.snr_low=10.0 dB is above .*snr_high=0.0 dB"),
    ({"noises": ("pink", "purple")},
     r"config.train.noise_augment.noises: .*'purple'.* does not exist"),
    ({"noises": ()}, r"config.train.noise_augment.noises=\(\): expected a non-empty sequence"),
    ({"weights": (1.0,)}, r"weights=\(1.0,\) has 1 value\(s\) but the pool has 3 noise\(s\)"),
])
def test_bad_noise_augment_settings_are_named(tone_root, tmp_path, settings, message):
  config = tiny_config(tone_root, tmp_path / "cache")
  config.sweep.noises = ("white",)
  config.train.noise_augment.enabled = True
  config.train.noise_augment.update(settings)
  with pytest.raises(ConfigError, match=message):
    preflight.check_config(config, ("train",))


def test_resplit_folds_keep_sources_together_and_are_written(tone_root, tmp_path):
  config = tiny_config(tone_root, tmp_path / "cache", steps=1, checkpoint_every=1, eval_every=0)
  config.data.update(split_folds=2, split_seed=3, test_folds=(2,))
  loop.train(config, tmp_path / "run", spec=tiny_spec())
  with open(tmp_path / "run/folds.csv", newline="", encoding="utf-8") as handle:
    rows = list(csv.DictReader(handle))
  # folds.csv lists every clip of the source; each class is dealt evenly over the two folds.
  sizes = collections.Counter(row["category"] for row in rows)
  assert {row["fold"] for row in rows} == {"1", "2"} and sum(sizes.values()) == len(rows)
  for category, size in sizes.items():
    per_fold = sorted(sum(row["fold"] == fold and row["category"] == category for row in rows)
                      for fold in ("1", "2"))
    assert per_fold == [size // 2, size - size // 2], category
  with pytest.raises(ConfigError, match=r"config.data.split_folds must be 0"):
    config.data.split_folds = 1
    config_checks.check_data_config(config.data)


SHARDED_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path[:0] = [{tests!r}, {repo!r}]
    import jax, jax.numpy as jnp, numpy as np
    import test_noise_augment as t
    from jaxnoise.train import steps
    assert jax.device_count() == 4, jax.devices()
    config = t.augmented_config({root!r}, {cache!r}, {hum!r})
    augmenter, bank = t.augmenter_and_bank(config, t.tiny_spec())
    clips = np.random.default_rng(2).standard_normal((8, 40000)).astype(np.float32)
    outputs = {{}}
    for name, devices in (("one", jax.devices()[:1]), ("four", jax.devices())):
      placement = steps.make_placement(devices)
      noisy, draws = jax.jit(augmenter)(jax.random.key(5), placement.shard_batch(clips),
                                        placement.replicate(bank))
      outputs[name] = {{"noisy": np.asarray(noisy).tolist(),
                       **{{k: np.asarray(v).tolist() for k, v in draws.items()}}}}
      outputs[name + "_shards"] = len(noisy.sharding.device_set)
    print("RESULT" + json.dumps(outputs))
""")


def test_augmentation_on_a_batch_split_over_four_devices(tone_root, tmp_path, hum_file):
  script = SHARDED_SCRIPT.format(tests=str(TESTS_DIR), repo=str(TESTS_DIR.parent),
                                 root=str(tone_root), cache=str(tmp_path / "cache"),
                                 hum=str(hum_file))
  result = run_on_cpu_devices(script, 4)
  assert result["four_shards"] == 4 and result["one_shards"] == 1
  for key in ("applied", "noise", "snr_db", "recording", "start"):
    assert result["four"][key] == result["one"][key], key
  np.testing.assert_allclose(result["four"]["noisy"], result["one"]["noisy"], rtol=1e-5,
                             atol=1e-6)


def test_the_robust_example_configs_pass_every_check(shared_dir):
  """Both variants load as --config=configs/robust.py:VARIANT and their pools are disjoint (the
  config reads ../shared, which the fixture requires)."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  from ml_collections import config_flags  # pylint: disable=import-outside-toplevel
  configs = {}
  for variant in ("baseline", "augmented"):
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "config file", flag_values=flag_values)
    flag_values(["prog", f"--config={TESTS_DIR.parent / 'configs' / 'robust.py'}:{variant}"])
    configs[variant] = flag_values.config
  assert not configs["baseline"].train.noise_augment.enabled
  augmented = configs["augmented"]
  assert augmented.train.noise_augment.enabled and augmented.data.split_folds == 5
  preflight.check_config(augmented, ("train", "sweep"))
  pool = noise_augment.resolve_pool(augmented)
  assert [noise.name for noise in pool] == ["white", "pink", "brown", "wind", "engine_field",
                                            "horn_field", "speech", "music"]

