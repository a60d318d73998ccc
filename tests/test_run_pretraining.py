"""run_pretraining.py and its input pipeline against the original's numbers."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import checkpoints
from bert_tf.data import pretraining_dataset
from bert_tf.data import record_format
from bert_tf.modeling import BertConfig, BertPretrainer
from bert_tf.tasks import pretraining
from bert_tf.training import metrics
from bert_tf.training import optimization
from bert_tf.training import trainer as trainer_lib
import script_runner
from test_run_classifier import eval_scalars

ROOT = pathlib.Path(__file__).resolve().parents[1]


def write_records(path, features_list):
  """Writes pretraining records from dicts of feature name -> values."""
  with tf.io.TFRecordWriter(str(path)) as writer:
    for features in features_list:
      writer.write(record_format.features_to_example({
          name: (record_format.create_float_feature(np.ravel(v).tolist())
                 if name == "masked_lm_weights" else
                 record_format.create_int_feature(np.ravel(v).tolist()))
          for name, v in features.items()}))
  return str(path)


def io_records(io):
  """The three examples of io.npz as feature dicts."""
  names = record_format.PRETRAINING_FEATURE_NAMES
  return [{name: io[name][i] for name in names} for i in range(3)]


def run_script(*args, timeout=300):
  """Runs run_pretraining.py; returns the CompletedProcess."""
  env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, str(ROOT / "run_pretraining.py")] +
                        list(args), env=env, capture_output=True, text=True,
                        timeout=timeout, cwd=str(ROOT))


def test_three_train_steps_end_at_the_original_weights(fixtures_dir,
                                                       tmp_path):
  small = fixtures_dir / "original_bert_small"
  io = np.load(small / "io.npz")
  data = write_records(tmp_path / "io.tfrecord", io_records(io))
  out = tmp_path / "out"
  result = run_script(
      "--bert_config_file=%s" % (small / "bert_config.json"),
      "--input_file=%s" % data, "--output_dir=%s" % out,
      "--init_checkpoint=%s" % (small / "bert_model.ckpt"),
      "--do_train", "--train_batch_size=3", "--max_seq_length=32",
      "--max_predictions_per_seq=5", "--learning_rate=1e-3",
      "--num_train_steps=10", "--num_warmup_steps=2",
      "--save_checkpoints_steps=3", "--iterations_per_loop=3",
      "--log_steps=1", "--seed=1")
  assert result.returncode == 0, result.stderr[-3000:]
  # The loss logged after steps 1..3 is the loss before each step.
  logged = [float(line.split("loss = ")[1].split()[0])
            for line in result.stderr.splitlines()
            if "] step " in line][:3]
  np.testing.assert_allclose(logged, io["train_losses_before_step"],
                             atol=1e-5, rtol=0)
  log_lines = [l for l in result.stderr.splitlines() if "] step " in l]
  assert len(log_lines) == 10
  assert "step 10/10  loss = " in log_lines[-1]
  assert "examples/s = " in log_lines[-1] and "ETA 0:00:00" in log_lines[-1]
  # TensorBoard summaries, one per logged step.
  tags = {}
  for event_file in out.glob("events.out.tfevents.*"):
    for event in tf.compat.v1.train.summary_iterator(str(event_file)):
      for value in event.summary.value:
        tags.setdefault(value.tag, []).append(event.step)
  assert sorted(tags) == ["examples_per_second", "learning_rate", "loss",
                          "mlm_accuracy", "mlm_loss", "nsp_accuracy",
                          "nsp_loss"]
  assert tags["loss"] == list(range(1, 11))
  state = tf.train.get_checkpoint_state(str(out))
  assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
      "model.ckpt-3", "model.ckpt-6", "model.ckpt-9", "model.ckpt-10"]
  ours = tf.train.load_checkpoint(str(out / "model.ckpt-3"))
  trained = tf.train.load_checkpoint(
      str(small / "trained" / "bert_model.ckpt"))
  names = trained.get_variable_to_shape_map()
  for name in names:
    np.testing.assert_allclose(ours.get_tensor(name),
                               trained.get_tensor(name), atol=1e-5, rtol=0,
                               err_msg=name)
  ours_map = ours.get_variable_to_dtype_map()
  assert ours.get_tensor("global_step") == 3
  assert ours_map["global_step"] == tf.int64
  expected = set(names) | {"global_step"}
  expected |= {n + "/adam_m" for n in names} | {n + "/adam_v" for n in names}
  assert set(ours_map) == expected


def test_eval_gives_the_original_metrics(fixtures_dir, tmp_path):
  small = fixtures_dir / "original_bert_small"
  result = run_script(
      "--bert_config_file=%s" % (small / "pretrained" / "bert_config.json"),
      "--input_file=%s" % (small / "eval.tfrecord"),
      "--output_dir=%s" % tmp_path,
      "--init_checkpoint=%s" % (small / "pretrained" / "bert_model.ckpt"),
      "--do_eval", "--eval_batch_size=8", "--max_eval_steps=8",
      "--max_seq_length=40", "--max_predictions_per_seq=6")
  assert result.returncode == 0, result.stderr[-3000:]
  got = metrics.read_eval_results(str(tmp_path / "eval_results.txt"))
  expected = json.loads((small / "eval_expected.json").read_text())
  assert sorted(got) == ["global_step", "loss", "masked_lm_accuracy",
                         "masked_lm_loss", "next_sentence_accuracy",
                         "next_sentence_loss"]
  for key in ("masked_lm_accuracy", "masked_lm_loss",
              "next_sentence_accuracy", "next_sentence_loss"):
    assert got[key] == pytest.approx(expected[key], abs=1e-5), key
  # The same metrics as TensorBoard scalars under output_dir/eval.
  scalars = eval_scalars(tmp_path)
  assert sorted(scalars) == sorted(k for k in got if k != "global_step")
  for tag, (step, value) in scalars.items():
    assert step == got["global_step"]
    assert value == pytest.approx(got[tag], rel=1e-6), tag
  # The Estimator's `loss`: the mean over the 8 batches of the total loss.
  model = BertPretrainer(BertConfig.from_json_file(
      str(small / "pretrained" / "bert_config.json")))
  checkpoints.load_checkpoint(model, str(small / "pretrained" /
                                         "bert_model.ckpt"))
  batches = _batches(pretraining_dataset.pretraining_dataset(
      [str(small / "eval.tfrecord")], 40, 6, 8, is_training=False), 8)
  batch_losses = [float(pretraining.loss_fn(model, b, training=False)[0])
                  for b in batches]
  assert got["loss"] == pytest.approx(np.mean(batch_losses), abs=1e-5)
  assert got["global_step"] == 0


def run_main(*args):
  """Runs run_pretraining.main in this process with the given flags."""
  script_runner.run_main("run_pretraining", *args)


def test_script_errors_name_the_flag_and_the_lengths(fixtures_dir, tmp_path):
  small = fixtures_dir / "original_bert_small"
  common = ["--bert_config_file=%s" % (small / "bert_config.json"),
            "--output_dir=%s" % tmp_path, "--do_eval", "--max_seq_length=40"]
  with pytest.raises(ValueError, match="--input_file pattern '%s' matches "
                     "no file" % (tmp_path / r"no\*.tf")):
    run_main(*common, "--input_file=%s" % (tmp_path / "no*.tf"))
  with pytest.raises(ValueError, match=r"feature 'input_ids' has length 40, "
                     r"expected 32 \(--max_seq_length\)"):
    run_main(*common, "--input_file=%s" % (small / "eval.tfrecord"),
             "--max_seq_length=32", "--max_predictions_per_seq=6")
  with pytest.raises(ValueError, match="Cannot use sequence length 128 "
                     "because the BERT model was only trained up to sequence "
                     "length 40"):
    run_main(*common[:3], "--input_file=%s" % (small / "eval.tfrecord"))
  with pytest.raises(ValueError, match="At least one of `do_train` or "
                     "`do_eval` must be True"):
    run_main(*common[:2], "--input_file=%s" % (small / "eval.tfrecord"))


def test_record_length_check_names_feature_expected_and_found(fixtures_dir):
  data = str(fixtures_dir / "original_bert_small" / "eval.tfrecord")
  pretraining_dataset.check_record_lengths([data], 40, 6)
  with pytest.raises(ValueError, match=r"eval.tfrecord: feature "
                     r"'masked_lm_positions' has length 6, expected 20 "
                     r"\(--max_predictions_per_seq\)"):
    pretraining_dataset.check_record_lengths([data], 40, 20)


def _batches(dataset, n):
  return [{k: v.numpy() for k, v in b.items()} for b in dataset.take(n)]


def test_eval_pipeline_reads_records_in_order_and_repeats(fixtures_dir):
  data = str(fixtures_dir / "original_bert_small" / "eval.tfrecord")
  records = record_format.read_records(data)
  dataset = pretraining_dataset.pretraining_dataset(
      [data], 40, 6, global_batch_size=100, is_training=False)
  batches = _batches(dataset, 3)
  assert batches[0]["input_ids"].dtype == np.int32
  assert batches[0]["next_sentence_labels"].shape == (100, 1)
  ids = np.concatenate([b["input_ids"] for b in batches])
  expected = [r["input_ids"] for r in records]
  np.testing.assert_array_equal(ids[:230], expected)
  np.testing.assert_array_equal(ids[230:], expected[:70])  # repeated


def test_training_pipeline_shards_files_and_resumes(fixtures_dir, tmp_path):
  data = str(fixtures_dir / "original_bert_small" / "eval.tfrecord")
  records = record_format.read_records(data)
  names = record_format.PRETRAINING_FEATURE_NAMES
  files = [write_records(tmp_path / ("part-%d" % i),
                         [{k: r[k] for k in names} for r in records[i::2]])
           for i in range(2)]
  assert pretraining_dataset.expand_input_patterns(
      str(tmp_path / "part-*")) == files

  def pipeline(start_step=0, pipeline_id=0):
    context = tf.distribute.InputContext(
        num_input_pipelines=2, input_pipeline_id=pipeline_id,
        num_replicas_in_sync=2)
    return pretraining_dataset.pretraining_dataset(
        files, 40, 6, global_batch_size=16, is_training=True,
        input_context=context, seed=3, start_step=start_step)

  first = _batches(pipeline(), 20)
  assert first[0]["input_ids"].shape == (8, 40)  # per-replica batch
  # Pipeline 0 reads only part-0: 115 records, every one once per pass.
  part0 = {tuple(r["input_ids"]) for r in records[0::2]}
  seen = [tuple(x) for b in first for x in b["input_ids"]]
  assert set(seen[:115]) == part0 and len(set(seen[:115])) == 115
  assert set(seen[115:160]) <= part0
  assert seen[:115] != [tuple(r["input_ids"]) for r in records[0::2]]
  other = {tuple(x) for b in _batches(pipeline(pipeline_id=1), 15)
           for x in b["input_ids"]}
  assert other == {tuple(r["input_ids"]) for r in records[1::2]}
  # A run resumed at step 5 reads what the uninterrupted one read next.
  resumed = _batches(pipeline(start_step=5), 15)
  for a, b in zip(first[5:], resumed):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])


def test_dynamic_masking_undoes_stored_masks_and_draws_new_ones(
    fixtures_dir):
  small = fixtures_dir / "original_bert_small"
  data = str(small / "eval.tfrecord")
  records = record_format.read_records(data)
  masking = pretraining_dataset.DynamicMasking.from_vocab_file(
      str(small / "vocab.txt"))
  vocab = [l.strip() for l in open(small / "vocab.txt", encoding="utf-8")]
  assert vocab[masking.mask_id] == "[MASK]"
  assert masking.vocab_size == 413

  def read(seed):
    return _batches(pretraining_dataset.pretraining_dataset(
        [data], 40, 6, 230, is_training=False, seed=seed,
        dynamic_masking=masking), 2)

  first, second = read(5)
  again, _ = read(5)
  np.testing.assert_array_equal(first["input_ids"], again["input_ids"])
  assert (first["masked_lm_positions"] != second["masked_lm_positions"]).any()
  num_masked, total = 0, 0
  for i, record in enumerate(records):
    # The original tokens: the stored masks undone.
    original = np.array(record["input_ids"])
    stored = np.array(record["masked_lm_weights"]) > 0
    original[np.array(record["masked_lm_positions"])[stored]] = np.array(
        record["masked_lm_ids"])[stored]
    weights = first["masked_lm_weights"][i]
    n = int(weights.sum())
    num_tokens = sum(record["input_mask"])
    assert n == min(6, max(1, int(round(num_tokens * 0.15))))
    positions = first["masked_lm_positions"][i][:n]
    assert list(positions) == sorted(set(positions))
    assert all(vocab[original[p]] not in ("[CLS]", "[SEP]") for p in positions)
    assert all(p < num_tokens for p in positions)
    np.testing.assert_array_equal(first["masked_lm_ids"][i][:n],
                                  original[positions])
    unmasked = np.setdiff1d(np.arange(40), positions)
    np.testing.assert_array_equal(first["input_ids"][i][unmasked],
                                  original[unmasked])
    num_masked += int((first["input_ids"][i][positions] ==
                       masking.mask_id).sum())
    total += n
  assert 0.7 < num_masked / total < 0.9  # about 80% become [MASK]


def test_trainer_resumes_slots_and_step_and_keeps_the_last_checkpoints(
    fixtures_dir, tmp_path):
  small = fixtures_dir / "original_bert_small"
  config = BertConfig.from_json_file(str(small / "bert_config.json"))
  data = str(small / "eval.tfrecord")
  strategy = tf.distribute.OneDeviceStrategy("/cpu:0")

  def make_trainer(output_dir):
    trainer = trainer_lib.Trainer(
        strategy, pretraining.model_fn(config), pretraining.loss_fn,
        str(output_dir),
        optimizer_fn=lambda: optimization.create_optimizer(1e-3, 6, 2),
        global_batch_size=4, iterations_per_loop=2, save_checkpoints_steps=2,
        keep_checkpoint_max=2, log_steps=2)
    trainer.initialize(str(small / "bert_model.ckpt"))
    return trainer

  def dataset_fn(context, start_step):
    return pretraining_dataset.pretraining_dataset(
        [data], 40, 6, 4, True, context, seed=11, start_step=start_step)

  whole = make_trainer(tmp_path / "whole")
  whole.train(dataset_fn, 6)
  assert sorted(os.listdir(tmp_path / "whole")) == sorted(
      ["checkpoint", "model.ckpt-4.index", "model.ckpt-4.data-00000-of-00001",
       "model.ckpt-6.index", "model.ckpt-6.data-00000-of-00001"] +
      [f for f in os.listdir(tmp_path / "whole") if "tfevents" in f])
  # As if interrupted after step 4: only model.ckpt-4 in a fresh directory.
  parts = tmp_path / "parts"
  parts.mkdir()
  for suffix in (".index", ".data-00000-of-00001"):
    shutil.copy(tmp_path / "whole" / ("model.ckpt-4" + suffix), parts)
  (parts / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-4"\n')
  resumed = make_trainer(parts)
  assert int(resumed.global_step.numpy()) == 4
  resumed.train(dataset_fn, 6)
  a = tf.train.load_checkpoint(str(tmp_path / "whole" / "model.ckpt-6"))
  b = tf.train.load_checkpoint(str(tmp_path / "parts" / "model.ckpt-6"))
  for name in a.get_variable_to_shape_map():
    np.testing.assert_allclose(a.get_tensor(name), b.get_tensor(name),
                               atol=1e-6, rtol=0, err_msg=name)


def test_float16_training_scales_the_loss_and_follows_float32(fixtures_dir):
  small = fixtures_dir / "original_bert_small"
  io = np.load(small / "io.npz")
  config = BertConfig.from_json_file(str(small / "bert_config.json"))
  batch = {k: io[k] for k in record_format.PRETRAINING_FEATURE_NAMES}
  trainer_lib.set_dtype_policy("float16")
  try:
    trainer = trainer_lib.Trainer(
        tf.distribute.OneDeviceStrategy("/cpu:0"),
        pretraining.model_fn(config), pretraining.loss_fn, "/unused",
        optimizer_fn=lambda: optimization.create_optimizer(1e-3, 10, 2),
        global_batch_size=3, dtype="float16")
  finally:
    trainer_lib.set_dtype_policy("float32")
  trainer.initialize(str(small / "bert_model.ckpt"))
  assert trainer.model.weights[0].dtype == "float32"
  iterator = trainer.train_iterator(
      lambda context, start: tf.data.Dataset.from_tensors(batch).repeat())
  losses = [trainer.run_steps(iterator, 1)["loss"] for _ in range(3)]
  # Unscaled float16 losses, near the original float32 ones.
  np.testing.assert_allclose(losses, io["train_losses_before_step"],
                             atol=2e-2, rtol=0)
  assert float(trainer.loss_scale.numpy()) == 2.0 ** 15
  assert int(trainer.good_steps.numpy()) == 3
  assert int(trainer.global_step.numpy()) == 3
