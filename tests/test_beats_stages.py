"""BEATs through the stages: predict, the zero-shot sweep from an upstream file, a fine-tuning step.

All use the golden tiny model of ../shared/golden/beats (3 layers of 96): as converted (19 classes),
or saved again in BEATs' format with a 527-class AudioSet predictor for the zero-shot path.
"""
import json
import pathlib
import sys

import jax
import numpy as np
import pytest
import soundfile

from conftest import REPO_ROOT, override
from jaxnoise.data import clips as clip_loading
from jaxnoise.data import sources, zero_shot
from jaxnoise.models import store
from jaxnoise.sweep import run as sweep_run
from jaxnoise.sweep import store as sweep_store
from jaxnoise.train import loop

if str(REPO_ROOT) not in sys.path:
  sys.path.insert(0, str(REPO_ROOT))
from configs import beats as beats_config  # pylint: disable=wrong-import-position
from configs import quickstart  # pylint: disable=wrong-import-position

torch = pytest.importorskip("torch", reason="reading BEATs checkpoints needs torch")


@pytest.fixture(scope="module")
def golden_checkpoint(golden_dir):
  return golden_dir / "beats" / "beats_tiny_esc19.pt"


@pytest.fixture(scope="module")
def golden(golden_dir):
  return dict(np.load(golden_dir / "beats" / "beats_tiny_esc19.io.npz"))


@pytest.fixture(scope="module")
def audioset_checkpoint(golden_checkpoint, tmp_path_factory):
  """The golden model with a random 527-class predictor, in BEATs' released file format."""
  checkpoint = torch.load(golden_checkpoint, map_location="cpu", weights_only=True)
  generator = torch.Generator().manual_seed(0)
  width = checkpoint["model"]["predictor.weight"].shape[1]
  checkpoint["model"]["predictor.weight"] = torch.randn(527, width, generator=generator) * 0.3
  checkpoint["model"]["predictor.bias"] = torch.randn(527, generator=generator) * 0.1
  checkpoint["cfg"]["predictor_class"] = 527
  checkpoint["label_dict"] = {index: f"/m/{index}" for index in range(527)}  # ignored
  path = tmp_path_factory.mktemp("upstream") / "beats_tiny_as.pt"
  torch.save(checkpoint, path)
  return path


def test_predict_cli_scores_match_upstreams_logits(golden_checkpoint, golden, tmp_path, capsys):
  from jaxnoise import convert  # pylint: disable=import-outside-toplevel
  from jaxnoise.predict import main  # pylint: disable=import-outside-toplevel
  model = convert.convert_to_directory("beats", golden_checkpoint, tmp_path / "beats")
  files = []
  for name, clip in zip(golden["clip_names"], golden["waveform"]):
    files.append(tmp_path / name)
    soundfile.write(files[-1], clip, 16000, subtype="FLOAT")
  assert main(["--checkpoint", str(model), "--json", *map(str, files)]) == 0
  records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
  spec, _ = store.load_model(model)
  assert spec.output_activation == "softmax"  # a 19-class head: the ESC convention
  expected = jax.nn.softmax(golden["pooled_logits"], axis=-1)
  for record, row in zip(records, expected):
    assert record["output_activation"] == "softmax"
    # The waveform path's pooled-logit error (7.2e-6) through the softmax.
    np.testing.assert_allclose(record["scores"], row, rtol=0, atol=5e-6)


def test_zero_shot_sweep_from_an_upstream_beats_file(audioset_checkpoint, esc50_dir, tmp_path):
  """The quickstart's sweep with a BEATs file: converted on the fly, AudioSet outputs mapped to the
  tested ESC classes; its clean decisions are the model's own on the clips at 16 kHz."""
  config = override(quickstart.get_config(), {
      "modes": ("sweep",), "model.arch": "beats", "model.name": "beats_tiny",
      "model.checkpoint": str(audioset_checkpoint), "data.root": str(esc50_dir),
      "data.cache_dir": str(tmp_path / "cache"), "sweep.noises": ("white",),
      "sweep.snrs": (-10.0, 10.0), "sweep.folds": (2, 5), "sweep.chunk_clips": 4})
  summary = sweep_run.run(config, tmp_path / "run")
  assert summary["computed"] == 2  # clean, white
  rows = sweep_store.read_csv(tmp_path / "run" / sweep_store.RESULTS_FILE)
  assert len(rows) == 5 * 3  # 5 clips: clean, white at -10 and 10 dB
  (converted,) = (tmp_path / "cache" / "models").iterdir()
  spec, variables = store.load_model(converted)
  assert spec.arch == "beats" and spec.output_activation == "sigmoid" and spec.num_classes == 527
  chosen, label_names, target_ids = sources.select_classes(sources.read_esc50(esc50_dir), "esc19",
                                                           "clock_tick")
  records = sorted((c for c in chosen if c.fold in (2, 5)), key=lambda c: (c.fold, c.filename))
  tables = [list(zero_shot.audioset_indices(name)) for name in label_names]
  waveforms = np.stack(clip_loading.load_clips([c.path for c in records], 16000, 80000, None,
                                               convert=True))
  scores = jax.nn.sigmoid(jax.jit(lambda v, x: spec.apply(v, x)["logits"])(variables, waveforms))
  expected = {record.filename: target_ids[int(np.argmax([row[t].max() for t in tables]))]
              for record, row in zip(records, np.asarray(scores))}
  actual = {row["file"]: int(row["predicted"]) for row in rows if row["noise"] == "clean"}
  assert actual == expected


@pytest.mark.slow  # ~45 s on 2 cores: conversion, a new head, compiling the train and eval steps
def test_one_finetuning_step_with_the_beats_recipe(golden_checkpoint, esc50_dir, tmp_path):
  config = beats_config.get_config()
  config = override(config, {
      "model.checkpoint": str(golden_checkpoint), "data.root": str(esc50_dir),
      "data.cache_dir": str(tmp_path / "cache"), "data.classes": "20,21,22",
      "data.test_folds": (5,), "train.epochs": 0.0, "train.steps": 1, "train.batch_size": 8,
      "train.log_every": 1, "train.checkpoint_every": 1})
  result = loop.train(config, tmp_path / "run")
  assert result[5]["train_clips"] == 24 and result[5]["test_clips"] == 2
  spec, variables = store.load_model(result[5]["model_dir"])
  assert spec.arch == "beats" and spec.num_classes == 3
  assert spec.labels == ("crying_baby", "sneezing", "clapping")
  assert spec.output_activation == "softmax"
  params = variables["params"]
  assert params["predictor"]["kernel"].shape == (96, 3)  # a fresh head for the 3 classes
  # One AdamW step from the upstream body: |change| <= lr (1 + weight_decay |w|), the first
  # step's rate being the warm-up's 1/19 of the peak.
  from jaxnoise import convert  # pylint: disable=import-outside-toplevel
  tensors, _ = convert.converter("beats").read_checkpoint(golden_checkpoint)
  before = tensors["encoder.layers.0.fc1.weight"].T
  after = np.asarray(params["encoder"]["layers_0"]["fc1"]["kernel"])
  rate = config.train.learning_rate / config.train.warmup_steps
  change = np.abs(after - before)
  assert 0 < change.max() <= rate * (1 + config.train.weight_decay * np.abs(before).max()) * 1.001
  assert pathlib.Path(result[5]["model_dir"]).is_dir()
