"""launch.py: the quickstart end to end (small grid), clean errors with exit status 2."""
import subprocess
import sys
import urllib.error

import pytest

from conftest import REPO_ROOT
from jaxnoise.errors import JaxnoiseError
from jaxnoise.runtime import checkpoints, files
from jaxnoise.sweep import store

if str(REPO_ROOT) not in sys.path:
  sys.path.insert(0, str(REPO_ROOT))
import launch  # pylint: disable=wrong-import-position

QUICKSTART = str(REPO_ROOT / "configs" / "quickstart.py")


def launch_process(*arguments, timeout=600):
  return subprocess.run([sys.executable, str(REPO_ROOT / "launch.py"), *arguments],
                        capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)


def test_quickstart_writes_every_table_and_plot(shared_dir, tmp_path):
  pytest.importorskip("torch", reason="the quickstart converts the mn04_as PyTorch checkpoint")
  workdir = tmp_path / "quickstart"
  process = launch_process(
      f"--config={QUICKSTART}", f"--workdir={workdir}", "--config.sweep.snrs=(-10,10)",
      '--config.sweep.noises=("pink","esc50:rain")', "--config.sweep.folds=(2,5)",
      f"--config.data.cache_dir={tmp_path / 'cache'}", f"--config.cache_dir={tmp_path / 'xla'}")
  assert process.returncode == 0, process.stderr[-3000:]
  assert "report:" in process.stdout
  for name in (store.RESULTS_FILE, store.ACCURACY_FILE, store.RUN_FILE):
    assert (workdir / name).is_file(), name
  report = workdir / "report"
  for name in ("index.md", "index.html", "accuracy_vs_snr.png", "accuracy_vs_snr_pink.png",
               "accuracy_vs_snr_esc50_rain.png", "spectrograms_mn04_as_zero-shot.png",
               "robustness.csv", "complexity.csv", "noise_power.csv", "accuracy_by_snr.csv",
               "confusion/mn04_as_zero-shot_clean.png",
               "confusion/mn04_as_zero-shot_pink_-10dB.png",
               "confusion/mn04_as_zero-shot_esc50_rain_-10dB.png"):
    assert (report / name).is_file(), name
  accuracy = {(row["noise"], row["snr_db"]): float(row["accuracy"])
              for row in store.read_accuracy(workdir)}
  assert set(accuracy) == {("clean", ""), ("pink", "-10"), ("pink", "10"), ("esc50:rain", "-10"),
                           ("esc50:rain", "10")}
  assert accuracy[("clean", "")] >= 0.6  # zero-shot mn04_as on 5 clips (all 5 right here)
  (complexity,) = files.read_csv(report / "complexity.csv")
  assert int(complexity["parameters"]) == 983599  # upstream mn04_as


@pytest.mark.parametrize("arguments, message", [
    (["--config.sweep.snrs=()"], "config.sweep.snrs is empty"),
    (['--config.modes=("fly",)'], "config.modes"),
    (["--config.sweep.no_such_key=1"], "no_such_key"),
    (['--config.sweep.noises=("esc50:snoring",)', "--config.sweep.snrs=(0,)"], "under test"),
])
def test_user_errors_exit_2_with_one_line(arguments, message, tmp_path, shared_dir):
  process = launch_process(f"--config={QUICKSTART}", f"--workdir={tmp_path}", *arguments,
                           f"--config.data.cache_dir={tmp_path / 'cache'}",
                           f"--config.cache_dir={tmp_path / 'xla'}", timeout=300)
  assert process.returncode == 2, process.stderr[-2000:]
  last = process.stderr.strip().splitlines()[-1]
  assert last.startswith("error:") and message in last
  assert "Traceback" not in process.stderr


def test_missing_workdir_is_a_usage_error():
  process = launch_process(f"--config={QUICKSTART}", timeout=120)
  assert process.returncode == 2 and "--workdir" in process.stderr


def test_modes():
  class Config:
    modes = "all"
  assert launch.modes_of(Config) == ("train", "sweep", "report")
  Config.modes = ("sweep", "report")
  assert launch.modes_of(Config) == ("sweep", "report")


def test_offline_checkpoint_download_says_what_to_pass(tmp_path, monkeypatch):
  def offline(*_, **__):
    raise urllib.error.URLError("no network")

  monkeypatch.setattr(checkpoints.urllib.request, "urlopen", offline)
  missing = tmp_path / "checkpoints" / "mn04_as_mAP_432.pt"
  with pytest.raises(JaxnoiseError) as error:
    checkpoints.resolve_checkpoint(str(missing))
  text = str(error.value)
  assert "--config.model.checkpoint=" in text and checkpoints.RELEASES[missing.name][0] in text
  assert not missing.exists() and list(missing.parent.iterdir()) == []
  with pytest.raises(JaxnoiseError, match="does not exist"):
    checkpoints.resolve_checkpoint(str(tmp_path / "other.pt"))
