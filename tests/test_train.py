"""The training loop: augmentation, schedules, data order, resume, data parallelism, real models.

Most tests train a tiny Flax network (BatchNorm + dropout, so the 'batch_stats' and 'dropout'
contract is exercised) on a small synthetic ESC-50-layout dataset of tones at an 8 kHz model rate.
The "done when" tests train the real CNN10 and fine-tune the real mn04_as on the shared clips.
"""
import bisect
import json
import pathlib
import textwrap

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest
import soundfile

from configs import base
from conftest import run_on_cpu_devices, write_esc50
from jaxnoise.data import esc50, selection
from jaxnoise.errors import ConfigError, JaxnoiseError
from jaxnoise.models import registry, store
from jaxnoise.models.spec import ModelSpec
from jaxnoise.train import augment, loop, optim, prepare

TESTS_DIR = pathlib.Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
TONE_CLASSES = {20: 300.0, 21: 1200.0, 22: 3000.0}  # target -> tone frequency


# --- A tiny model and dataset -------------------------------------------------------------------


class TinyNet(nn.Module):
  num_classes: int

  @nn.compact
  def __call__(self, features, train: bool = False):
    x = nn.Conv(4, (3, 3))(features[..., None])
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
    x = nn.relu(x).mean(axis=(1, 2))
    x = nn.Dropout(0.2, deterministic=not train)(x)
    return {"logits": nn.Dense(self.num_classes)(x)}


def tiny_frontend(waveform):
  """``[batch, samples]`` -> ``[batch, frames, 32]`` log magnitude of 400-sample frames."""
  usable = waveform.shape[1] // 400 * 400
  frames = waveform[:, :usable].reshape(waveform.shape[0], -1, 400)
  return jnp.log(jnp.abs(jnp.fft.rfft(frames, axis=-1))[..., :200:6] + 1e-3)


def tiny_spec(num_classes=3):
  return ModelSpec(arch="tiny", config={"num_classes": num_classes}, sample_rate=8000,
                   clip_seconds=5.0, band=(50.0, 3500.0), frontend=tiny_frontend,
                   network=TinyNet(num_classes), output_activation="softmax",
                   labels=tuple(f"class_{i}" for i in range(num_classes)))


def make_tone_dataset(root: pathlib.Path, clips_per_class: int = 6) -> pathlib.Path:
  """Noisy tones in ESC-50's layout: folds 1-3, two clips per class and fold, plus target 23
  ('breathing') present in fold 1 only."""
  rng = np.random.default_rng(0)
  t = np.arange(esc50.CLIP_SAMPLES) / esc50.SAMPLE_RATE
  entries = [(target, i % 3 + 1, f"{target}{i:03d}") for target in TONE_CLASSES
             for i in range(clips_per_class)]
  entries.append((23, 1, "23000"))
  clips = []
  for target, fold, source in entries:
    tone = 0.3 * np.sin(2 * np.pi * TONE_CLASSES.get(target, 50.0) * t)
    clips.append((fold, target, source, tone + 0.05 * rng.standard_normal(t.size)))
  return write_esc50(root, clips)


@pytest.fixture(scope="module")
def tone_root(tmp_path_factory):
  return make_tone_dataset(tmp_path_factory.mktemp("tones") / "esc50")


def tiny_config(root, cache_dir, **train) -> ml_collections.ConfigDict:
  config = base.get_config()
  config.data.root = str(root)
  config.data.cache_dir = str(cache_dir)
  config.data.classes = "crying_baby,sneezing,clapping"
  config.data.test_folds = (1,)
  config.train.update(dict(batch_size=8, steps=12, log_every=2, checkpoint_every=4, eval_every=4,
                           augment_cycle=("mixup", "none", "mask"), mixup_alpha=0.2,
                           learning_rate=3e-3))
  config.train.update(train)
  return config


def restored_variables(model_dir) -> dict:
  return ocp.StandardCheckpointer().restore(pathlib.Path(model_dir).absolute()
                                            / store.VARIABLES_DIR)


def assert_trees_equal(left, right):
  left_flat = jax.tree_util.tree_flatten_with_path(left)[0]
  right_flat = jax.tree_util.tree_flatten_with_path(right)[0]
  assert [path for path, _ in left_flat] == [path for path, _ in right_flat]
  for (path, a), (_, b) in zip(left_flat, right_flat):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=jax.tree_util.keystr(path))


# --- Augmentation -------------------------------------------------------------------------------


def test_masking_zeroes_bands_of_bounded_width():
  features = jnp.ones((256, 50, 40))
  masked = np.asarray(augment.mask_time_frequency(
      jax.random.key(0), features, time_masks=2, time_mask_width=5, freq_masks=1,
      freq_mask_width=4))
  zero = masked == 0
  assert set(np.unique(masked)) <= {0.0, 1.0}
  time_masked = zero.all(axis=2)  # [batch, time] columns fully zeroed
  freq_masked = zero.all(axis=1)  # [batch, freq]
  # Every zero lies in a masked row or column (SpecAugment masks whole bands).
  np.testing.assert_array_equal(zero, time_masked[:, :, None] | freq_masked[:, None, :])
  assert time_masked.sum(axis=1).max() <= 2 * 4 and freq_masked.sum(axis=1).max() <= 3
  # Widths are floor(U(0, W)): each of 0..W-1 occurs; a single frequency band's mean width is 1.5.
  assert set(freq_masked.sum(axis=1)) == {0, 1, 2, 3}
  assert abs(freq_masked.sum(axis=1).mean() - 1.5) < 0.25
  unmasked = augment.mask_time_frequency(jax.random.key(0), features, time_masks=0,
                                         time_mask_width=5, freq_masks=0, freq_mask_width=4)
  np.testing.assert_array_equal(unmasked, features)


def test_mixup_weights_and_partners():
  partner, lam = augment.mixup_partners(jax.random.key(1), 4096, 0.2)
  assert sorted(np.asarray(partner).tolist()) == list(range(4096))
  lam = np.asarray(lam)
  assert np.all((lam >= 0.5) & (lam <= 1.0)) and np.isfinite(lam).all()
  # E[max(b, 1 - b)] = 1 - 2 I_0.5(a + 1, a) B(a + 1, a) / B(a, a) = 0.8988 for a = 0.2.
  assert abs(lam.mean() - 0.8988) < 0.02
  x = jnp.arange(12.0).reshape(3, 4)
  mixed = augment.mix(x, jnp.array([1, 2, 0]), jnp.array([1.0, 0.5, 0.75]))
  np.testing.assert_allclose(mixed, [x[0], 0.5 * x[1] + 0.5 * x[2], 0.75 * x[2] + 0.25 * x[0]])
  partner, lam = augment.mixup_partners(jax.random.key(1), 4, 0.0)
  np.testing.assert_array_equal(lam, 1.0)
  np.testing.assert_array_equal(partner, np.arange(4))


# --- Schedules ----------------------------------------------------------------------------------


def schedule_for(steps_per_epoch=1.0, **settings):
  config = base.get_config().train
  config.update(settings)
  return optim.learning_rate_schedule(config, steps_per_epoch=steps_per_epoch)


def test_tfnet_step_decay():
  schedule = schedule_for(schedule="step_decay", learning_rate=1e-4, lr_decay_every=100,
                          lr_decay_rate=0.9)
  for step, decays in ((0, 0), (99, 0), (100, 1), (250, 2), (4499, 44)):
    np.testing.assert_allclose(schedule(step), 1e-4 * 0.9 ** decays, rtol=1e-5)  # float32


def efficientat_factor(epoch, warmup=10, rampdown_length=65, start=10, last=0.01):
  """EfficientAT's exp_warmup_linear_down, written from its published definition."""
  if epoch < warmup:
    phase = 1.0 - np.clip(epoch, 0.5, warmup) / warmup
    rampup = float(np.exp(-5.0 * phase * phase))
  else:
    rampup = 1.0
  if epoch <= start:
    rampdown = 1.0
  elif epoch - start < rampdown_length:
    rampdown = last + (1.0 - last) * (rampdown_length - epoch + start) / rampdown_length
  else:
    rampdown = last
  return rampup * rampdown


def test_efficientat_schedule_per_epoch():
  steps_per_epoch = 4.75
  schedule = schedule_for(steps_per_epoch, schedule="warmup_linear_down", learning_rate=6e-5,
                          warmup_epochs=10, rampdown_start_epoch=10, rampdown_epochs=65,
                          final_lr_factor=0.01)
  for epoch in (0, 1, 5, 9, 10, 11, 40, 74, 75, 79):
    for step in (np.ceil(epoch * steps_per_epoch), np.ceil((epoch + 1) * steps_per_epoch) - 1):
      np.testing.assert_allclose(schedule(step), 6e-5 * efficientat_factor(epoch), rtol=1e-5,
                                 err_msg=f"epoch {epoch}, step {step}")


def htsat_factor(epoch, boundaries=(10, 20, 30), rates=(0.02, 0.05, 0.1)):
  """HTS-AT's lr_foo (sed_model.py), written from its published definition."""
  if epoch < 3:
    return rates[epoch]
  position = -1 - bisect.bisect_left(boundaries, epoch)
  if position < -3:
    return max(rates[0] * 0.98 ** epoch, 0.03)
  return rates[position]


def test_htsat_epoch_table_matches_upstream_rule():
  config = base.get_config().train
  config.update(schedule="epoch_table", learning_rate=1e-3)
  config.epoch_boundaries = (0, 1, 2, 11, 21, 31)
  config.epoch_factors = (0.02, 0.05, 0.1, 0.05, 0.02, 0.03)
  steps_per_epoch = 9.5  # 608 clips / batch 64
  schedule = optim.learning_rate_schedule(config, steps_per_epoch=steps_per_epoch)
  for epoch in range(100):
    first_step = int(np.ceil(epoch * steps_per_epoch))
    np.testing.assert_allclose(schedule(first_step), 1e-3 * htsat_factor(epoch), rtol=1e-6,
                               err_msg=f"epoch {epoch}")


def load_config_flag(argument):
  """The config ``--config=ARGUMENT`` gives launch.py (repo root on sys.path)."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  from ml_collections import config_flags  # pylint: disable=import-outside-toplevel
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "config file", flag_values=flag_values)
  flag_values(["launch.py", f"--config={argument}"])
  return flag_values.config


@pytest.mark.parametrize("variant", ["", ":upstream"])
def test_study_configs_load_with_config_flags(variant):
  """Each config file and recipe loads as `--config=configs/X.py[:upstream]` would."""
  for name, arch in (("cnn10", "cnn10"), ("tfnet", "tfnet"), ("mn40_as", "mn"),
                     ("htsat", "htsat"), ("beats", "beats")):
    if name == "beats" and variant:
      continue  # BEATs has one recipe (the study did not train it)
    config = load_config_flag(f"{REPO_ROOT / 'configs' / f'{name}.py'}{variant}")
    assert config.model.arch == arch and config.train.batch_size == 64
    assert config.data.classes == "esc19"
    schedule = optim.learning_rate_schedule(config.train, steps_per_epoch=10)
    assert float(schedule(0)) > 0 and optim.optimizer(config.train, schedule) is not None
    # Epochs count DataLoader steps: 608 clips at batch 64 are ceil(9.5) = 10 steps per epoch.
    assert loop.steps_per_epoch(608, 64) == 10 and loop.steps_per_epoch(640, 64) == 10
    steps = loop.total_steps(config.train, 608)
    assert steps == {"cnn10": 4500, "tfnet": 4500, "mn40_as": 500, "htsat": 1000,
                     "beats": 300}[name]


def config_differences(first, second) -> dict:
  flat = [traverse_util.flatten_dict(c.to_dict(), sep=".") for c in (first, second)]
  return {key: (flat[0].get(key), flat[1].get(key)) for key in set(flat[0]) | set(flat[1])
          if flat[0].get(key) != flat[1].get(key)}


STUDY_PROTOCOL = {"sweep.model_fold": ("best", "all"), "sweep.colored_generator": ("study", "psd")}


@pytest.mark.parametrize("name, augmentation", [
    # The study's Table 4.3: time-frequency masking only for the CNNs (upstream's mixup batches
    # become plain ones), nothing for the fine-tuned models, whose upstream recipes mix up (and
    # HTS-AT's network adds its SpecAugment stripes).
    ("cnn10", {"train.augment_cycle": (("none", "none", "mask"), ("mixup", "none", "mask")),
               "train.mixup_alpha": (0.0, 0.2)}),
    ("tfnet", {"train.augment_cycle": (("none", "none", "mask"), ("mixup", "none", "mask")),
               "train.mixup_alpha": (0.0, 0.2)}),
    ("mn40_as", {"train.augment_cycle": (("none",), ("mixup",)),
                 "train.mixup_alpha": (0.0, 0.3)}),
    ("htsat", {"train.augment_cycle": (("none",), ("mixup",)), "train.mixup_alpha": (0.0, 0.5),
               "model.overrides.spec_augment": (False, None)}),
])
def test_study_and_upstream_recipes_differ_exactly_where_documented(name, augmentation):
  path = REPO_ROOT / "configs" / f"{name}.py"
  differences = config_differences(load_config_flag(str(path)), load_config_flag(f"{path}:upstream"))
  assert differences == {**augmentation, **STUDY_PROTOCOL}


def test_mn10_as_variant_is_the_4_88_m_parameter_model():
  path = REPO_ROOT / "configs" / "mn40_as.py"
  default, mn10 = load_config_flag(str(path)), load_config_flag(f"{path}:mn10_as")
  assert config_differences(default, mn10) == {
      "model.name": ("mn40_as_ext", "mn10_as"),
      "model.checkpoint": ("checkpoints/mn40_as_ext_mAP_487.pt", "checkpoints/mn10_as_mAP_471.pt")}
  assert load_config_flag(f"{path}:mn10_as,upstream").train.augment_cycle == ("mixup",)
  # Width 1.0 with the AudioSet head: the study's Table 5.1 gives 4.88 M.
  spec = registry.build_spec("mn", {"width": 1.0, "num_classes": 527})
  parameters = sum(np.size(leaf) for leaf in
                   jax.tree.leaves(jax.eval_shape(spec.init, jax.random.key(0))["params"]))
  assert parameters == 4_876_831


@pytest.mark.parametrize("variant, message", [
    ("mn40_as.py:mn20", r"unknown word\(s\) \['mn20'\]; expected comma-separated words of study, "
                        "upstream, mn40_as_ext, mn10_as"),
    ("mn40_as.py:mn10_as,mn40_as_ext", "choose one model"),
    ("htsat.py:study,upstream", "choose one recipe"),
])
def test_unknown_config_variants_are_named(variant, message):
  with pytest.raises(Exception, match=message):
    load_config_flag(str(REPO_ROOT / "configs" / variant))


# --- Data order ---------------------------------------------------------------------------------


def test_batches_cover_each_epoch_once_and_depend_only_on_seed():
  size, batch = 10, 4
  stream = np.concatenate([loop.batch_indices(7, 2, step, batch, size) for step in range(5)])
  assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:20]) == list(range(10))
  np.testing.assert_array_equal(stream[:10], loop.epoch_order(7, 2, 0, size))
  np.testing.assert_array_equal(loop.batch_indices(7, 2, 3, batch, size), stream[12:16])
  assert not np.array_equal(loop.epoch_order(8, 2, 0, size), loop.epoch_order(7, 2, 0, size))
  assert sorted(loop.batch_indices(0, 1, 0, 8, 3)) == [0, 0, 0, 1, 1, 1, 2, 2]  # tiny sets repeat


def test_transplant_keeps_body_and_replaces_mismatched_head():
  loaded = {"params": {"body": {"kernel": np.ones((2, 3))}, "head": {"kernel": np.ones((3, 527))}}}
  fresh = {"params": {"body": {"kernel": np.zeros((2, 3))}, "head": {"kernel": np.zeros((3, 19))}}}
  merged = prepare.transplant(loaded, fresh, ("params/head/*",), True, "x")
  np.testing.assert_array_equal(merged["params"]["body"]["kernel"], 1)
  np.testing.assert_array_equal(merged["params"]["head"]["kernel"], np.zeros((3, 19)))
  with pytest.raises(ConfigError, match="allow_head_mismatch"):
    prepare.transplant(loaded, fresh, ("params/head/*",), False, "x")
  fresh["params"]["body"]["kernel"] = np.zeros((2, 4))
  with pytest.raises(ConfigError, match="params/body/kernel"):
    prepare.transplant(loaded, fresh, ("params/head/*",), True, "x")


def test_dataset_follows_the_specs_rule_for_longer_clips(tone_root, tmp_path):
  import dataclasses  # pylint: disable=import-outside-toplevel
  config = tiny_config(tone_root, tmp_path / "cache")
  chosen = selection.select(config)
  assert chosen.label_names == ("crying_baby", "sneezing", "clapping")
  five = prepare.load_dataset(config, tiny_spec(), chosen)
  assert five.waveforms.shape == (18, 40000)
  # Clips in file-name order (every source's order), labels in class order.
  names = [r.filename for r in chosen.records]
  assert names == sorted(names)
  np.testing.assert_array_equal(
      five.labels, [("crying_baby", "sneezing", "clapping").index(r.category)
                    for r in chosen.records])
  ten_seconds = dataclasses.replace(tiny_spec(), clip_seconds=10.0)
  padded = prepare.load_dataset(config, ten_seconds, chosen).waveforms
  np.testing.assert_array_equal(padded[:, :40000], five.waveforms)
  np.testing.assert_array_equal(padded[:, 40000:], 0)
  left_to_frontend = dataclasses.replace(ten_seconds, pad_short_clips=False)
  kept = prepare.load_dataset(config, left_to_frontend, chosen).waveforms
  np.testing.assert_array_equal(kept, five.waveforms)


# --- Training the tiny model --------------------------------------------------------------------


class Interrupt(Exception):
  pass


def test_resume_after_a_kill_equals_an_uninterrupted_run(tone_root, tmp_path):
  config = tiny_config(tone_root, tmp_path / "cache")
  config.data.test_folds = (1, 4)  # fold 4 is absent from the data: skipped
  uninterrupted = loop.train(config, tmp_path / "a", spec=tiny_spec())
  assert list(uninterrupted) == [1]
  assert uninterrupted[1]["train_clips"] == 12 and uninterrupted[1]["test_clips"] == 6

  def kill_at_step_6(fold, step, metrics):
    if step == 6:
      raise Interrupt()

  with pytest.raises(Interrupt):
    loop.train(config, tmp_path / "b", spec=tiny_spec(), step_callback=kill_at_step_6)
  assert not (tmp_path / "b" / "fold1" / "model").exists()
  resumed_steps = []
  resumed = loop.train(config, tmp_path / "b", spec=tiny_spec(),
                       step_callback=lambda fold, step, metrics: resumed_steps.append(step))
  assert resumed_steps == list(range(5, 13))  # restarted from the checkpoint at step 4
  assert resumed == {1: {**uninterrupted[1], "model_dir": str(tmp_path / "b/fold1/model")}}
  assert_trees_equal(restored_variables(tmp_path / "a/fold1/model"),
                     restored_variables(tmp_path / "b/fold1/model"))
  curve_a = (tmp_path / "a/fold1/curves.csv").read_text()
  assert curve_a == (tmp_path / "b/fold1/curves.csv").read_text()
  rows = [line.split(",") for line in curve_a.splitlines()[1:]]
  assert [int(r[0]) for r in rows] == [2, 4, 6, 8, 10, 12]
  assert all(r[5] != "" for r in rows if int(r[0]) % 4 == 0)  # test loss every 4 steps
  for name in ("curves.png", "predictions.csv", "result.json"):
    assert (tmp_path / "a/fold1" / name).is_file()
  table = (tmp_path / "a/accuracy_per_fold.md").read_text()
  assert "fold 1" in table and "fold 4" not in table
  # A finished fold is not trained again.
  again = loop.train(config, tmp_path / "a", spec=tiny_spec(),
                     step_callback=lambda *args: pytest.fail("retrained a finished fold"))
  assert again == uninterrupted
  # Neither a checkpoint nor a finished fold is taken over by a run with other settings.
  config.train.learning_rate = 1e-3
  config.train.log_every = 3  # logging frequency alone would not matter
  with pytest.raises(ConfigError, match=r"other settings \(train.learning_rate\)"):
    loop.train(config, tmp_path / "b", spec=tiny_spec())


def test_folds_without_data_give_clear_errors(tone_root, tmp_path):
  config = tiny_config(tone_root, tmp_path / "cache")
  config.data.test_folds = (4, 5)
  with pytest.raises(JaxnoiseError, match=r"none of the test folds \(4, 5\).*present: \(1, 2, 3\)"):
    loop.train(config, tmp_path / "w", spec=tiny_spec())
  config = tiny_config(tone_root, tmp_path / "cache")
  config.data.classes = "breathing"  # only in fold 1
  with pytest.raises(JaxnoiseError, match="test fold 1: the other folds hold no clip"):
    loop.train(config, tmp_path / "w", spec=tiny_spec(1))


DATA_PARALLEL_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path[:0] = [{tests!r}, {repo!r}]
    import jax
    import test_train
    from jaxnoise.train import loop
    assert jax.device_count() == 4, jax.devices()
    losses = {{}}
    for name, devices in (("one", jax.devices()[:1]), ("four", jax.devices())):
      config = test_train.tiny_config({root!r}, {cache!r}, steps=6, eval_every=0)
      record = losses.setdefault(name, [])
      result = loop.train(config, {work!r} + name, spec=test_train.tiny_spec(), devices=devices,
                          step_callback=lambda fold, step, m: record.append(float(m["loss"])))
      losses[name + "_accuracy"] = result[1]["accuracy"]
    try:
      config.train.batch_size = 6
      loop.train(config, {work!r} + "odd", spec=test_train.tiny_spec())
    except Exception as error:
      losses["odd_batch"] = str(error)
    print("RESULT" + json.dumps(losses))
""")


def test_four_simulated_devices_match_one(tone_root, tmp_path):
  script = DATA_PARALLEL_SCRIPT.format(tests=str(TESTS_DIR), repo=str(REPO_ROOT),
                                       root=str(tone_root), cache=str(tmp_path / "cache"),
                                       work=str(tmp_path / "w"))
  result = run_on_cpu_devices(script, 4)
  assert len(result["one"]) == len(result["four"]) == 6
  # Same global batch, same keys; only the order of the cross-device sums differs (float32).
  np.testing.assert_allclose(result["four"], result["one"], rtol=1e-5)
  assert result["four_accuracy"] == result["one_accuracy"]
  assert "batch_size=6 must be a multiple of the 4 devices" in result["odd_batch"]


# --- The real models on the shared clips (issue 6 "done when") ----------------------------------


def test_cnn10_loss_falls_on_shared_clips(esc50_dir, tmp_path):
  config = base.get_config()
  config.model.arch = "cnn10"
  config.data.root = str(esc50_dir)
  config.data.cache_dir = str(tmp_path / "cache")
  config.data.classes = "crying_baby,keyboard_typing,clock_alarm"  # all three have fold-2 clips
  config.data.test_folds = (2,)
  config.train.update(batch_size=8, steps=30, log_every=5, checkpoint_every=30,
                      learning_rate=1e-3)
  result = loop.train(config, tmp_path / "run")
  assert result[2]["train_clips"] == 26 and result[2]["test_clips"] == 3
  rows = [line.split(",") for line in
          (tmp_path / "run/fold2/curves.csv").read_text().splitlines()[1:]]
  losses = [float(r[3]) for r in rows]
  assert len(losses) == 6 and all(np.isfinite(losses))
  assert losses[-1] < 0.5 * losses[0], losses


def test_finetune_real_mn04_as_and_restore(golden_dir, esc50_dir, tmp_path):
  pytest.importorskip("torch", reason="reading the upstream checkpoint needs the 'convert' extra")
  config = base.get_config()
  config.model.arch = "mn"
  config.model.checkpoint = str(golden_dir / "mn" / "mn04_as_mAP_432.pt")
  config.data.root = str(esc50_dir)
  config.data.cache_dir = str(tmp_path / "cache")
  config.data.test_folds = (2,)
  config.train.update(batch_size=8, steps=3, log_every=1, checkpoint_every=3,
                      augment_cycle=("mixup",), mixup_alpha=0.3, learning_rate=6e-5)
  result = loop.train(config, tmp_path / "run")
  assert result[2]["train_clips"] == 154 and result[2]["test_clips"] == 3
  spec, variables = store.load_model(result[2]["model_dir"])
  targets = esc50.class_targets("esc19", "clock_tick")
  names = tuple(esc50.CLASS_NAMES[t] for t in targets)
  assert spec.arch == "mn" and spec.config["width"] == 0.4
  assert tuple(spec.labels) == names and spec.num_classes == 19
  assert spec.output_activation == "softmax"
  source = json.loads((pathlib.Path(result[2]["model_dir"]) / "config.json").read_text())["source"]
  assert source["esc50_targets"] == list(targets) and source["test_fold"] == 2
  # The restored model is the trained one: its predictions are those written at the end.
  records = [r for r in esc50.load_metadata(esc50_dir) if r.fold == 2]
  waveforms = np.stack([soundfile.read(esc50.audio_path(esc50_dir, r), dtype="float32")[0]
                        for r in records])
  import librosa  # pylint: disable=import-outside-toplevel
  waveforms = librosa.resample(waveforms, orig_sr=44100, target_sr=32000, res_type="soxr_hq")
  logits = np.asarray(jax.jit(lambda v, x: spec.apply(v, x)["logits"])(variables, waveforms))
  predictions = (tmp_path / "run/fold2/predictions.csv").read_text().splitlines()[1:]
  assert [line.split(",")[4] for line in predictions] == [names[i] for i in logits.argmax(1)]
  # Fine-tuning started from the AudioSet body and moved it a little (Adam, 3 steps of 6e-5).
  from jaxnoise import convert  # pylint: disable=import-outside-toplevel
  tensors = convert.converter("mn").read_tensors(config.model.checkpoint)
  upstream_scale = tensors["features.0.1.weight"]
  trained_scale = np.asarray(variables["params"]["features_0"]["norm"]["scale"])
  change = np.abs(trained_scale - upstream_scale)
  assert 0 < change.max() < 3 * 3 * 6e-5
  assert variables["params"]["classifier_output"]["kernel"].shape[-1] == 19
