"""A train + sweep job killed with SIGKILL mid-training and mid-sweep resumes to the same results.

launch.py runs the tiny job of ``tiny_run`` (a CNN10 trained for 12 steps with checkpoints every 2,
then swept over 7 units: clean, and 3 realisations each of white and pink noise) in a subprocess.
The test kills it twice, at points it reads from the job's log: once the checkpoint of step 6 is on
disk, and right after the first sweep unit was stored. Between kills, every file under a result
name must be whole; a third run then finishes the job, resuming training from its checkpoint and
the sweep from its stored units, and must end with exactly the tables, logits, curves and
parameters of an uninterrupted in-process run of the same config. Temporary files left by a kill
inside a write (planted here, since a real kill rarely lands there) are gone after the resume.
"""
import csv
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

import tiny_run
from conftest import REPO_ROOT
from jaxnoise.models import store as model_store
from jaxnoise.sweep import store

if str(REPO_ROOT) not in sys.path:
  sys.path.insert(0, str(REPO_ROOT))
import launch  # pylint: disable=wrong-import-position

TIMEOUT = 600
TEST_CLIPS = 6  # fold 1: two clips of each of the three classes
SNRS = 2
UNITS = 1 + 2 * 3  # clean, then white and pink x 3 realisations


def run_until(arguments, stop_when, timeout=TIMEOUT):
  """Runs ``arguments``; SIGKILLs it as soon as a line of its log satisfies ``stop_when``.

  Returns:
    ``(return code, log lines)``; the code is -SIGKILL when the process was killed.
  """
  process = subprocess.Popen(arguments, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, cwd=REPO_ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  watchdog = threading.Timer(timeout, process.kill)
  watchdog.start()
  lines = []
  try:
    for line in process.stdout:
      lines.append(line)
      if stop_when(line):
        os.kill(process.pid, signal.SIGKILL)
        break
    process.wait()
  finally:
    watchdog.cancel()
    process.stdout.close()
  return process.returncode, lines


def read_csv_rows(path):
  with open(path, newline="", encoding="utf-8") as handle:
    return list(csv.DictReader(handle))


def assert_results_whole(workdir: pathlib.Path):
  """Every file under a result name parses completely (the atomic-write guarantee)."""
  for name in (store.RESULTS_FILE, store.ACCURACY_FILE):
    if (workdir / name).exists():
      assert read_csv_rows(workdir / name)
  for path in [workdir / store.RUN_FILE, workdir / "sweep" / "fingerprint.json",
               *workdir.glob("fold*/run_settings.json"), *workdir.glob("fold*/result.json")]:
    if path.exists():
      json.loads(path.read_text())
  for path in workdir.glob("fold*/curves.csv"):
    rows = read_csv_rows(path)
    assert [int(row["step"]) for row in rows] == list(range(1, len(rows) + 1))
  for path in (workdir / "sweep" / "units").glob("*.csv"):
    rows = read_csv_rows(path)
    assert len(rows) == TEST_CLIPS * (1 if path.name.endswith("-clean.csv") else SNRS), path
    assert np.load(path.with_suffix(".npz"))["logits"].shape[0] == TEST_CLIPS


def leftovers(workdir: pathlib.Path):
  """Temporary files and folders of killed writes, anywhere in the workdir."""
  return sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*")
                if p.name.startswith(".") or p.name.endswith(".tmp") or "tmp" in p.name)


def finished_checkpoints(workdir: pathlib.Path):
  return sorted(int(p.name) for p in (workdir / "fold1" / "checkpoints").iterdir()
                if p.name.isdigit())


def variables_of(model_dir):
  return ocp.StandardCheckpointer().restore(pathlib.Path(model_dir).absolute()
                                            / model_store.VARIABLES_DIR)


@pytest.fixture(scope="module")
def job(tmp_path_factory):
  """The config file, and the workdir of the same job run uninterrupted in this process."""
  folder = tmp_path_factory.mktemp("job")
  data_root = tiny_run.write_tone_dataset(folder / "esc50")
  config_file = tiny_run.write_config(folder / "tiny.py", data_root, folder / "cache")
  reference = folder / "uninterrupted"
  launch.run(tiny_run.load_config(config_file), reference)
  return config_file, reference


@pytest.mark.slow
def test_killed_training_and_sweep_resume_to_the_uninterrupted_results(job, tmp_path):
  config_file, reference = job
  workdir = tmp_path / "killed"
  command = [sys.executable, str(REPO_ROOT / "launch.py"), f"--config={config_file}",
             f"--workdir={workdir}"]

  # 1. Killed while training, once the (asynchronous) checkpoint of step 6 is on disk.
  def checkpointed_step_6(line):
    return "fold 1 step" in line and 6 in finished_checkpoints(workdir)

  code, log = run_until(command, checkpointed_step_6)
  assert code == -signal.SIGKILL, "".join(log[-30:])
  assert 6 in finished_checkpoints(workdir)
  assert not (workdir / "fold1" / "model").exists()
  assert not (workdir / "fold1" / "result.json").exists()
  assert_results_whole(workdir)
  # A kill between writing a file and renaming it into place leaves its temporary copy.
  (workdir / "fold1" / ".curves.csv.k1ll3d.tmp").write_text("step,epo")

  # 2. Resumed from that checkpoint, then killed right after the first sweep unit was stored.
  code, log = run_until(command, lambda line: "fold1 clean" in line)
  text = "".join(log)
  assert code == -signal.SIGKILL, text[-3000:]
  resumed_at = int(text.split("resumed from the checkpoint at step ")[1].split()[0])
  assert resumed_at >= 6  # not trained from scratch
  units = sorted(p.name for p in (workdir / "sweep" / "units").glob("*.csv"))
  assert units == ["fold1-clean.csv"]
  assert not (workdir / store.RESULTS_FILE).exists()
  assert_results_whole(workdir)
  assert [path for path in leftovers(workdir) if "checkpoints" not in path] == []
  for stale in (workdir / f".{store.RESULTS_FILE}.k1ll3d.tmp",
                workdir / "sweep" / "units" / ".fold1-pink-0a1b2c3d-r1.csv.k1ll3d.tmp"):
    stale.write_text("model,noise,realisa")

  # 3. Finished: training is not repeated, only the six missing units are computed.
  process = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT,
                           cwd=REPO_ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert process.returncode == 0, process.stderr[-3000:]
  assert "fold 1: already trained" in process.stderr
  assert process.stderr.count("clip x SNR in") == UNITS - 1
  assert_results_whole(workdir)
  assert leftovers(workdir) == []

  # The same results as the run that was never interrupted, bit for bit.
  for name in (store.RESULTS_FILE, store.ACCURACY_FILE):
    assert (workdir / name).read_bytes() == (reference / name).read_bytes(), name
  for path in sorted((reference / "sweep" / "units").glob("*.npz")):
    np.testing.assert_array_equal(np.load(workdir / "sweep" / "units" / path.name)["logits"],
                                  np.load(path)["logits"], err_msg=path.name)
  assert ((workdir / "fold1" / "curves.csv").read_bytes()
          == (reference / "fold1" / "curves.csv").read_bytes())
  resumed, uninterrupted = variables_of(workdir / "fold1" / "model"), variables_of(
      reference / "fold1" / "model")
  assert jax.tree.structure(resumed) == jax.tree.structure(uninterrupted)
  for left, right in zip(jax.tree.leaves(resumed), jax.tree.leaves(uninterrupted)):
    np.testing.assert_array_equal(left, right)
  assert (json.loads((workdir / "fold1" / "result.json").read_text())["accuracy"]
          == json.loads((reference / "fold1" / "result.json").read_text())["accuracy"])
