"""run_transformer_xl.py, its byte corpus records and its optimizer."""

import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from bert_tf.data import lm_bytes
from bert_tf.training import metrics
from bert_tf.training import optimization

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Runs a script with the CPU split into three logical devices.
THREE_CPUS = """
import runpy, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 3)
sys.argv = [sys.argv[1]] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

# The model of ../shared/fixtures/original_transformer_xl_small as flags.
FIXTURE_MODEL_FLAGS = [
    "--n_layer=2", "--d_model=32", "--d_embed=32", "--n_head=4",
    "--d_head=8", "--d_inner=64", "--mem_len=16", "--tgt_len=12",
    "--dropout=0", "--dropatt=0", "--init_std=0.3"]


def run_script(*args, launcher=None, timeout=600):
  """Runs run_transformer_xl.py (optionally through a launcher script)."""
  env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
  command = [sys.executable] + ([str(launcher)] if launcher else [])
  command += [str(ROOT / "run_transformer_xl.py")] + list(args)
  return subprocess.run(command, env=env, capture_output=True, text=True,
                        timeout=timeout, cwd=str(ROOT))


def logged(stderr, key):
  """The values of `key = <number>` in the trainer's step lines, in order."""
  return [float(re.search(r"\b%s = ([-\d.e]+)" % key, line).group(1))
          for line in stderr.splitlines() if "] step " in line]


def fixture_stream(fixtures_dir):
  """The bytes of the fixture's 3 rows, one after the other (3 x 49 bytes)."""
  io = np.load(fixtures_dir / "original_transformer_xl_small" / "io.npz")
  rows = [np.concatenate([io["inputs"][:, :, b].ravel(),
                          io["targets"][-1, -1:, b]]) for b in range(3)]
  ids = np.concatenate(rows)
  return bytes(io["vocab_bytes"][ids].astype(np.uint8).tolist()), io


def train_on_fixture_stream(fixtures_dir, tmp_path, train_steps, *args,
                            launcher=None):
  """Trains from the fixture's checkpoint on its stream (batch 3, tgt_len 12).

  The steps are the fixture's 4 segments, in order, repeated.

  Args:
    fixtures_dir: the fixtures directory.
    tmp_path: where the corpus and `out` (the model_dir) go.
    train_steps: --train_steps (a checkpoint at the end).
    *args: more flags.
    launcher: optional launcher script.

  Returns:
    (the finished process, the fixture's io.npz, the initial checkpoint).
  """
  text, io = fixture_stream(fixtures_dir)
  corpus = tmp_path / "stream.txt"
  corpus.write_bytes(text)
  ckpt = fixtures_dir / "original_transformer_xl_small" / "model.ckpt"
  result = run_script(
      "--input_file=%s" % corpus, "--model_dir=%s" % (tmp_path / "out"),
      "--init_checkpoint=%s" % ckpt, "--valid_fraction=0",
      "--test_fraction=0", "--train_batch_size=3",
      "--train_steps=%d" % train_steps, "--iterations=1",
      "--save_steps=%d" % train_steps, *FIXTURE_MODEL_FLAGS, *args,
      launcher=launcher)
  assert result.returncode == 0, result.stderr[-3000:]
  return result, io, ckpt


def test_records_follow_the_original_layout(tmp_path):
  ids = np.arange(20)  # 2 rows of 10: 0..9 and 10..19
  path, num_batch = lm_bytes.create_ordered_tfrecords(
      str(tmp_path), "train", ids, batch_size=2, tgt_len=4)
  assert os.path.basename(path) == "train.bsz-2.tlen-4.tfrecords"
  # Steps t = 0, 4, 8 of rows of 10 (9 inputs each): lengths 4, 4, 1.
  assert num_batch == 3
  info = json.loads(
      (tmp_path / "record_info-train.bsz-2.tlen-4.json").read_text())
  assert info == {"filenames": ["train.bsz-2.tlen-4.tfrecords"],
                  "bin_sizes": [], "num_batch": 3}
  steps = [(x.numpy().tolist(), y.numpy().tolist()) for x, y in
           lm_bytes.input_dataset(path, 2, training=False)]
  assert steps == [
      ([[0, 1, 2, 3], [10, 11, 12, 13]], [[1, 2, 3, 4], [11, 12, 13, 14]]),
      ([[4, 5, 6, 7], [14, 15, 16, 17]], [[5, 6, 7, 8], [15, 16, 17, 18]]),
      ([[8], [18]], [[9], [19]])]


def test_each_replica_reads_the_same_rows_every_step(tmp_path):
  path, _ = lm_bytes.create_ordered_tfrecords(
      str(tmp_path), "train", np.arange(4 * 7), batch_size=4, tgt_len=2)
  # One pipeline, 2 replicas: per-replica batches alternate replica 0, 1.
  context = tf.distribute.InputContext(1, 0, 2)
  batches = [x.numpy()[:, 0].tolist() for x, _ in
             lm_bytes.input_dataset(path, 4, True, context).take(6)]
  assert batches == [[0, 7], [14, 21], [2, 9], [16, 23], [4, 11], [18, 25]]
  # Two pipelines with one replica each: pipeline 1 reads rows 2 and 3.
  context = tf.distribute.InputContext(2, 1, 2)
  batches = [x.numpy()[:, 0].tolist() for x, _ in
             lm_bytes.input_dataset(path, 4, True, context).take(3)]
  assert batches == [[14, 21], [16, 23], [18, 25]]
  # Resuming at step 2 starts at the third step; the stream repeats.
  batches = [x.numpy()[:, 0].tolist() for x, _ in
             lm_bytes.input_dataset(path, 4, True, None, 2).take(2)]
  assert batches == [[4, 11, 18, 25], [0, 7, 14, 21]]


def test_bytes_vocabulary_and_errors(tmp_path):
  vocab = lm_bytes.build_vocab(b"banana!")
  assert vocab == [33, 97, 98, 110]
  assert lm_bytes.encode(b"nab!", vocab).tolist() == [3, 1, 2, 0]
  with pytest.raises(ValueError, match=r"corpus\.txt: byte 122 at offset 2 "
                     "is not in the vocabulary of 4 byte values"):
    lm_bytes.encode(b"baz", vocab, source="corpus.txt")
  splits = lm_bytes.split_corpus(b"0123456789" * 10, 0.1, 0.2)
  assert [len(splits[s]) for s in lm_bytes.SPLITS] == [70, 10, 20]
  assert splits["test"] == (b"0123456789" * 2)
  with pytest.raises(ValueError, match="leave no training data"):
    lm_bytes.split_corpus(b"0123", 0.5, 0.5)
  with pytest.raises(ValueError, match="Input file not found: .*missing.txt"):
    lm_bytes.prepare_corpus(str(tmp_path / "missing.txt"), str(tmp_path),
                            2, 2, 4, 4)


def test_cosine_schedule_by_hand():
  schedule = optimization.cosine_learning_rate_schedule(
      1.0, train_steps=10, warmup_steps=2, min_lr_ratio=0.1)
  rates = [float(schedule(tf.constant(s))) for s in (0, 1, 2, 6, 10, 12)]
  # Warmup 0, 0.5; then 0.1 + 0.9 * (1 + cos(pi * (s - 2) / 8)) / 2.
  np.testing.assert_allclose(rates, [0.0, 0.5, 1.0, 0.55, 0.1, 0.1],
                             atol=1e-6)
  no_warmup = optimization.cosine_learning_rate_schedule(2.0, 4, 0, 0.0)
  assert float(no_warmup(tf.constant(0))) == 2.0
  with pytest.raises(ValueError, match="warmup_steps=5, train_steps=5"):
    optimization.cosine_learning_rate_schedule(1.0, 5, 5, 0.0)


def test_adam_is_the_bias_corrected_tf1_adam_with_clipping():
  variable = tf.Variable([1.0, -2.0], name="w")
  optimizer = optimization.Adam(0.1, clip_norm=0.25)
  optimizer.build([variable])
  assert sorted(optimizer.slot_variables()) == ["w/Adam", "w/Adam_1"]
  grads = [np.array([3.0, 4.0]), np.array([0.03, -0.04]),
           np.array([-1.0, 0.5])]
  # tf.compat.v1.train.AdamOptimizer on grads clipped to a norm of 0.25.
  param, m, v = np.array([1.0, -2.0]), np.zeros(2), np.zeros(2)
  for step, grad in enumerate(grads):
    rate = optimizer.apply_gradients([(tf.constant(grad, tf.float32),
                                       variable)], tf.constant(step))
    assert float(rate) == pytest.approx(0.1)
    grad = grad * min(1.0, 0.25 / np.linalg.norm(grad))
    t = step + 1
    m = 0.9 * m + 0.1 * grad
    v = 0.999 * v + 0.001 * grad ** 2
    lr_t = 0.1 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
    param = param - lr_t * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(variable.numpy(), param, rtol=1e-5)


@pytest.mark.parametrize("strategy", [
    "one_device", pytest.param("mirrored", marks=pytest.mark.slow)])
def test_training_with_memory_reproduces_the_original(fixtures_dir, tmp_path,
                                                      strategy):
  # The fixture's rows as a corpus: with batch 3 and tgt_len 12, the steps
  # are its 4 segments. With learning rate 0, the loss of each step is the
  # original's loss of that segment with the memory of the previous ones;
  # mirrored over 3 CPUs, each replica carries its own row's memory.
  launcher = tmp_path / "three_cpus.py"
  launcher.write_text(THREE_CPUS)
  result, io, _ = train_on_fixture_stream(
      fixtures_dir, tmp_path, 4, "--learning_rate=0",
      "--distribution_strategy=%s" % strategy,
      launcher=launcher if strategy == "mirrored" else None)
  if strategy == "mirrored":
    assert "MirroredStrategy with 3 replica(s)" in result.stderr
  assert "Loaded 26 variables" in result.stderr
  np.testing.assert_allclose(logged(result.stderr, "loss"), io["nll"],
                             atol=1e-5, rtol=0)
  names = dict(tf.train.list_variables(str(tmp_path / "out" /
                                           "model.ckpt-4")))
  assert names["transformer/layer_0/rel_attn/qkv/kernel"] == [32, 96]
  assert names["transformer/layer_0/rel_attn/qkv/kernel/Adam_1"] == [32, 96]
  assert "global_step" in names


@pytest.mark.parametrize("dtype", [
    "float16", pytest.param("bfloat16", marks=pytest.mark.slow)])
def test_mixed_precision_training_follows_the_original(fixtures_dir, tmp_path,
                                                       dtype):
  # Two passes over the fixture's 4 segments with learning rate 1e-3; float16
  # with dynamic loss scaling. The first step's loss is the original's loss
  # of segment 1 (within the precision's bound, see test_transformer_xl);
  # training lowers the loss of every segment in the second pass.
  result, io, ckpt = train_on_fixture_stream(
      fixtures_dir, tmp_path, 8, "--learning_rate=1e-3",
      "--distribution_strategy=one_device", "--dtype=%s" % dtype)
  losses = np.array(logged(result.stderr, "loss"))
  assert losses.shape == (8,) and np.isfinite(losses).all()
  np.testing.assert_allclose(losses[0], io["nll"][0], rtol=1e-2, atol=0)
  assert (losses[4:] < losses[:4]).all(), losses
  reader = tf.train.load_checkpoint(str(tmp_path / "out" / "model.ckpt-8"))
  start = tf.train.load_checkpoint(str(ckpt))
  for name in ("transformer/layer_0/rel_attn/qkv/kernel",
               "transformer/adaptive_softmax/bias"):
    value = reader.get_tensor(name)
    assert value.dtype == np.float32 and np.isfinite(value).all()
    assert np.abs(value - start.get_tensor(name)).max() > 0


def test_bits_per_character_fall_on_enwik8_small(fixtures_dir, tmp_path):
  out = tmp_path / "out"
  result = run_script(
      "--input_file=%s" % (fixtures_dir / "corpora" / "enwik8_small.txt"),
      "--model_dir=%s" % out, "--do_train", "--do_eval",
      "--n_layer=2", "--d_model=64", "--d_embed=64", "--n_head=4",
      "--d_head=16", "--d_inner=128", "--tgt_len=32", "--mem_len=32",
      "--dropout=0", "--dropatt=0", "--train_batch_size=16",
      "--eval_batch_size=16", "--train_steps=400", "--iterations=100",
      "--save_steps=400", "--learning_rate=2e-3", "--warmup_steps=20",
      "--max_eval_batch=20", "--seed=1")
  assert result.returncode == 0, result.stderr[-3000:]
  # Training bpc of one batch, logged at steps 100, 200, 300, 400.
  bpc = logged(result.stderr, "bpc")
  assert len(bpc) == 4
  assert bpc[0] > max(bpc[1:])
  results = metrics.read_eval_results(str(out / "eval_results.txt"))
  assert results["global_step"] == 400
  assert results["bpc"] == pytest.approx(results["loss"] / np.log(2))
  # The byte unigram entropy of enwik8_small is 5.08 bits, an untrained
  # model scores about log2(195) = 7.6; context has to be used to get here.
  assert results["bpc"] < 4.2
  info = json.loads((out / "data" / "corpus-info.json").read_text())
  assert info["vocab_size"] == 195 and info["cutoffs"] == []


@pytest.mark.slow
def test_longer_training_lowers_validation_bits_per_character(fixtures_dir,
                                                              tmp_path):
  common = [
      "--input_file=%s" % (fixtures_dir / "corpora" / "enwik8_small.txt"),
      "--model_dir=%s" % (tmp_path / "out"), "--n_layer=3", "--d_model=64",
      "--d_embed=64", "--n_head=4", "--d_head=16", "--d_inner=128",
      "--tgt_len=32", "--mem_len=32", "--dropout=0.05", "--dropatt=0",
      "--train_batch_size=16", "--eval_batch_size=16", "--train_steps=1500",
      "--iterations=250", "--save_steps=500", "--learning_rate=1e-3",
      "--warmup_steps=100", "--max_eval_batch=50", "--seed=1"]
  results = {}
  # Evaluate the untrained model, then train and evaluate again.
  for name, args in (("untrained", ["--nodo_train", "--do_eval"]),
                     ("trained", ["--do_train", "--do_eval"])):
    result = run_script(*common, *args, timeout=3000)
    assert result.returncode == 0, result.stderr[-3000:]
    results[name] = metrics.read_eval_results(
        str(tmp_path / "out" / "eval_results.txt"))
  assert results["untrained"]["bpc"] > 7.0
  assert results["trained"]["bpc"] < 3.5
