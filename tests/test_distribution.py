"""Strategies, TPU errors, multi-device / multi-worker runs and a killed run.

The slow tests start real processes of run_pretraining.py: mirrored over two
logical CPU devices, multi_worker_mirrored with two local workers (TF_CONFIG
on loopback ports), and a run killed with SIGKILL after a checkpoint then
started again; each must end at the weights of the plain one_device run.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from bert_tf.training import distribution

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Runs run_pretraining.py with the CPU split into two logical devices.
TWO_CPUS = """
import runpy, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.argv = [sys.argv[1]] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_default_strategy_on_a_cpu_machine_is_one_device():
  assert distribution.default_strategy_name() == "one_device"
  assert distribution.default_strategy_name(use_tpu=True) == "tpu"
  assert distribution.default_strategy_name(num_gpus=2) == "mirrored"
  strategy = distribution.get_strategy()
  assert isinstance(strategy, tf.distribute.OneDeviceStrategy)
  assert strategy.num_replicas_in_sync == 1
  assert distribution.is_chief(strategy)


def test_bad_strategy_flags_are_clear_errors():
  with pytest.raises(ValueError, match=r"Unknown --distribution_strategy="
                     r"'horovod' \(expected one of one_device, mirrored, "
                     r"multi_worker_mirrored, tpu\)"):
    distribution.get_strategy("horovod")
  with pytest.raises(ValueError, match="--use_tpu conflicts with "
                     "--distribution_strategy=mirrored"):
    distribution.get_strategy("mirrored", use_tpu=True)
  with pytest.raises(ValueError, match="--num_gpus=2 but only 0 GPU"):
    distribution.get_strategy("one_device", num_gpus=2)


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_unreachable_tpu_fails_fast(monkeypatch):
  monkeypatch.delenv("TPU_NAME", raising=False)
  started = time.time()
  with pytest.raises(distribution.TpuUnreachableError,
                     match="no TPU found: this machine has no local TPU"):
    distribution.resolve_tpu(None)
  address = "grpc://127.0.0.1:%d" % _free_port()
  with pytest.raises(distribution.TpuUnreachableError,
                     match="TPU worker %s is not reachable" % address):
    distribution.resolve_tpu(address, connect_timeout=2.0)
  assert time.time() - started < 10


def _env(**extra):
  env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
  env.pop("TF_CONFIG", None)
  env.update(extra)
  return env


def _script_args(fixtures_dir, data, output_dir, *extra):
  small = fixtures_dir / "original_bert_small"
  return ["--bert_config_file=%s" % (small / "bert_config.json"),
          "--input_file=%s" % data, "--output_dir=%s" % output_dir,
          "--init_checkpoint=%s" % (small / "bert_model.ckpt"),
          "--max_seq_length=40", "--max_predictions_per_seq=6",
          "--learning_rate=1e-3", "--num_warmup_steps=2", "--seed=7",
          "--do_train"] + list(extra)


def _run(args, timeout=600, **env):
  return subprocess.run([sys.executable, str(ROOT / "run_pretraining.py")] +
                        args, env=_env(**env), capture_output=True, text=True,
                        timeout=timeout, cwd=str(ROOT))


def test_use_tpu_without_a_tpu_is_a_clear_error_not_a_hang(fixtures_dir,
                                                           tmp_path):
  data = fixtures_dir / "original_bert_small" / "eval.tfrecord"
  started = time.time()
  result = _run(_script_args(fixtures_dir, data, tmp_path, "--use_tpu"),
                timeout=120)
  assert result.returncode != 0
  assert "TpuUnreachableError: --use_tpu: no TPU found" in result.stderr
  assert time.time() - started < 120


def _records_with_full_masks(fixtures_dir, path, count):
  """Writes `count` records of eval.tfrecord whose 6 masked weights are all 1.

  With the same number of predictions in every record, the mean of the
  per-replica masked LM losses equals the loss of the whole batch, so runs
  with different numbers of replicas must end at the same weights.
  """
  source = fixtures_dir / "original_bert_small" / "eval.tfrecord"
  kept = []
  for record in tf.data.TFRecordDataset(str(source)).as_numpy_iterator():
    example = tf.train.Example.FromString(record)
    if sum(example.features.feature["masked_lm_weights"].float_list.value) == 6:
      kept.append(record)
    if len(kept) == count:
      break
  with tf.io.TFRecordWriter(str(path)) as writer:
    for record in kept:
      writer.write(record)
  return path


def _assert_same_weights(prefix_a, prefix_b, atol):
  a, b = tf.train.load_checkpoint(prefix_a), tf.train.load_checkpoint(prefix_b)
  names = a.get_variable_to_shape_map()
  assert sorted(names) == sorted(b.get_variable_to_shape_map())
  for name in names:
    np.testing.assert_allclose(a.get_tensor(name), b.get_tensor(name),
                               atol=atol, rtol=0, err_msg=name)


@pytest.mark.slow
def test_mirrored_on_two_cpus_ends_at_the_one_device_weights(fixtures_dir,
                                                             tmp_path):
  data = _records_with_full_masks(fixtures_dir, tmp_path / "d.tfrecord", 8)
  launcher = tmp_path / "two_cpus.py"
  launcher.write_text(TWO_CPUS)
  common = ["--train_batch_size=4", "--num_train_steps=6",
            "--iterations_per_loop=3"]
  outputs = {}
  for strategy in ("one_device", "mirrored"):
    outputs[strategy] = tmp_path / strategy
    result = subprocess.run(
        [sys.executable, str(launcher), str(ROOT / "run_pretraining.py")] +
        _script_args(fixtures_dir, data, outputs[strategy], *common,
                     "--distribution_strategy=" + strategy),
        env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
  assert "MirroredStrategy with 2 replica(s)" in result.stderr
  _assert_same_weights(str(outputs["one_device"] / "model.ckpt-6"),
                       str(outputs["mirrored"] / "model.ckpt-6"), atol=1e-5)


@pytest.mark.slow
def test_two_local_workers_match_one_worker(fixtures_dir, tmp_path):
  # One global batch of 4 records: each worker reads its 2, so every step
  # sees the same 4 records as the single worker.
  data = _records_with_full_masks(fixtures_dir, tmp_path / "d.tfrecord", 4)
  common = ["--train_batch_size=4", "--num_train_steps=4",
            "--iterations_per_loop=2"]
  cluster = {"worker": ["127.0.0.1:%d" % _free_port() for _ in range(2)]}
  workers = []
  for index in range(2):
    tf_config = json.dumps({"cluster": cluster,
                            "task": {"type": "worker", "index": index}})
    workers.append(subprocess.Popen(
        [sys.executable, str(ROOT / "run_pretraining.py")] +
        _script_args(fixtures_dir, data, tmp_path / "workers", *common,
                     "--distribution_strategy=multi_worker_mirrored"),
        env=_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd=str(ROOT)))
  try:
    logs = [w.communicate(timeout=600)[1] for w in workers]
  finally:
    for w in workers:
      if w.poll() is None:
        w.kill()
  for w, log in zip(workers, logs):
    assert w.returncode == 0, log[-3000:]
  assert "CollectiveAllReduceStrategy with 2 replica(s)" in logs[0]
  single = _run(_script_args(fixtures_dir, data, tmp_path / "single",
                             *common))
  assert single.returncode == 0, single.stderr[-3000:]
  # Only the chief (worker 0) writes checkpoints and summaries.
  assert len([f for f in os.listdir(tmp_path / "workers")
              if "tfevents" in f]) == 1
  _assert_same_weights(str(tmp_path / "workers" / "model.ckpt-4"),
                       str(tmp_path / "single" / "model.ckpt-4"), atol=1e-5)


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_weights(fixtures_dir,
                                                         tmp_path):
  small = fixtures_dir / "original_bert_small"
  common = ["--train_batch_size=8", "--num_train_steps=300",
            "--save_checkpoints_steps=100", "--iterations_per_loop=10",
            "--log_steps=10", "--deterministic", "--dynamic_masking",
            "--vocab_file=%s" % (small / "vocab.txt")]
  data = small / "eval.tfrecord"
  whole = _run(_script_args(fixtures_dir, data, tmp_path / "whole", *common))
  assert whole.returncode == 0, whole.stderr[-3000:]

  killed = tmp_path / "killed"
  args = _script_args(fixtures_dir, data, killed, *common)
  process = subprocess.Popen(
      [sys.executable, str(ROOT / "run_pretraining.py")] + args, env=_env(),
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(ROOT))
  try:
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None:
      if tf.train.latest_checkpoint(str(killed)):
        break
      time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
  finally:
    if process.poll() is None:
      process.kill()
  latest = tf.train.latest_checkpoint(str(killed))
  assert latest.endswith(("model.ckpt-100", "model.ckpt-200"))
  resumed = _run(args)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "Resumed from %s" % latest in resumed.stderr
  a = tf.train.load_checkpoint(str(tmp_path / "whole" / "model.ckpt-300"))
  b = tf.train.load_checkpoint(str(killed / "model.ckpt-300"))
  for name in a.get_variable_to_shape_map():
    np.testing.assert_array_equal(a.get_tensor(name), b.get_tensor(name),
                                  err_msg=name)
