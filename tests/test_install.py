"""`pip install .` gives a console command for every root script (slow)."""

import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig

import numpy as np
import pytest
import tensorflow as tf

ROOT = pathlib.Path(__file__).resolve().parents[1]
COMMANDS = ("bert-create-pretraining-data", "bert-run-pretraining",
            "bert-run-classifier", "bert-run-squad", "bert-extract-features",
            "bert-export-saved-model", "bert-convert-checkpoint",
            "bert-run-transformer-xl", "bert-learn-vocab")


@pytest.mark.slow
def test_installed_package_has_every_command(fixtures_dir, tmp_path):
  # A fresh venv with the package installed from a copy of the sources (not
  # editable); its dependencies are this environment's, seen through a .pth
  # file, so the test needs no download.
  source = tmp_path / "src"
  shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
      ".venv", ".git", "tests", "bench", "experiments", "work_dir", "*.egg-info",
      "build", "__pycache__"))
  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)],
                 check=True)
  python = venv / "bin" / "python"
  site = subprocess.run(
      [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
       "['purelib'])"], capture_output=True, text=True, check=True).stdout
  pathlib.Path(site.strip(), "deps.pth").write_text(
      sysconfig.get_paths()["purelib"] + "\n")
  subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps",
                  "--no-build-isolation", str(source)], check=True,
                 timeout=600)
  for command in COMMANDS:
    assert (venv / "bin" / command).exists(), command
  # One real run, from a directory where the sources are not importable.
  out = tmp_path / "converted"
  result = subprocess.run(
      [str(venv / "bin" / "bert-convert-checkpoint"),
       "--input=%s" % (fixtures_dir / "original_bert_small" / "bert_model.ckpt"),
       "--output=%s" % out, "--to=tf1"], capture_output=True, text=True,
      cwd=tmp_path, timeout=300, env=dict(os.environ, PYTHONPATH=""))
  assert result.returncode == 0, result.stderr[-3000:]
  reader = tf.train.load_checkpoint(str(out / "bert_model.ckpt"))
  original = tf.train.load_checkpoint(
      str(fixtures_dir / "original_bert_small" / "bert_model.ckpt"))
  np.testing.assert_array_equal(
      reader.get_tensor("bert/pooler/dense/kernel"),
      original.get_tensor("bert/pooler/dense/kernel"))
  shown = subprocess.run([str(venv / "bin" / "bert-run-classifier"),
                          "--helpshort"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300,
                         env=dict(os.environ, PYTHONPATH=""))
  assert "--task_name" in shown.stdout + shown.stderr
