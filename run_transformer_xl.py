"""Train and evaluate a Transformer-XL character (byte) language model.

The flags follow kimiyoung/transformer-xl `tf/train_gpu.py` (same names and
defaults). The corpus is the bytes of `--input_file`, cut into train / valid /
test and written as the original's ordered TFRecords (`bert_tf.data.lm_bytes`)
in `--data_dir`. Training runs on `tf.distribute` through the project's
`Trainer`, carrying each replica's memory from step to step, and writes
`model_dir/model.ckpt-<step>` with the original variable names (resuming from
the latest one). Evaluation runs the split in order with memory and writes
`model_dir/eval_results.txt` (loss in nats, pplx, bpc, global_step).
`--dtype=bfloat16|float16` trains and evaluates in mixed precision (float32
variables, memory, attention softmax and output log-probabilities; float16
with dynamic loss scaling), as run_pretraining.py.

  python run_transformer_xl.py --input_file=enwik8_small.txt \
    --model_dir=/tmp/txl --do_train --do_eval --n_layer=2 --d_model=64 ...
"""

import json
import os

from absl import flags
from absl import logging
import keras
import tensorflow as tf

from bert_tf import cli
from bert_tf.data import lm_bytes
from bert_tf.modeling import transformer_xl
from bert_tf.tasks import transformer_xl_lm
from bert_tf.training import distribution
from bert_tf.training import metrics
from bert_tf.training import optimization
from bert_tf.training import script_flags
from bert_tf.training import trainer as trainer_lib

FLAGS = flags.FLAGS

# Experiment (the original names).
flags.DEFINE_string("data_dir", None,
                    "Where the TFRecords, record info and corpus-info.json "
                    "go (default: <model_dir>/data).")
flags.DEFINE_string("model_dir", None, "Checkpoints and eval results.")
flags.DEFINE_bool("do_train", True, "Whether to run training.")
flags.DEFINE_bool("do_eval", False, "Whether to run eval on --eval_split.")
flags.DEFINE_string("init_checkpoint", None,
                    "Initial weights (an original Transformer-XL checkpoint "
                    "or one of this project) when model_dir has none.")
flags.DEFINE_enum("eval_split", "valid", ["valid", "test"],
                  "Which split to evaluate.")
flags.DEFINE_integer("max_eval_batch", -1,
                     "Evaluate at most this many batches (-1: all).")

# Optimization.
flags.DEFINE_float("learning_rate", 2.5e-4, "Maximum learning rate.")
flags.DEFINE_float("clip", 0.25, "Gradient clipping value (global norm).")
flags.DEFINE_float("min_lr_ratio", 0.004,
                   "Minimum learning rate ratio of the cosine decay.")
flags.DEFINE_integer("warmup_steps", 0, "Steps of linear lr warmup.")

# Training.
flags.DEFINE_integer("train_batch_size", 60, "Size of train batch.")
flags.DEFINE_integer("eval_batch_size", 60, "Size of valid batch.")
flags.DEFINE_integer("train_steps", 100000, "Total number of training steps.")
flags.DEFINE_integer("iterations", 500,
                     "Steps per loop; the loss is logged every this many.")
flags.DEFINE_integer("save_steps", 10000, "Steps between checkpoints.")

# Model.
flags.DEFINE_integer("tgt_len", 70, "Number of steps to predict.")
flags.DEFINE_integer("eval_tgt_len", None,
                     "Segment length of evaluation (default: --tgt_len).")
flags.DEFINE_integer("mem_len", 70, "Number of steps to cache.")
flags.DEFINE_bool("same_length", False, "Same length attention.")
flags.DEFINE_integer("clamp_len", -1, "Clamp length.")
flags.DEFINE_integer("n_layer", 6, "Number of layers.")
flags.DEFINE_integer("d_model", 500, "Dimension of the model.")
flags.DEFINE_integer("d_embed", 500, "Dimension of the embeddings.")
flags.DEFINE_integer("n_head", 10, "Number of attention heads.")
flags.DEFINE_integer("d_head", 50, "Dimension of each attention head.")
flags.DEFINE_integer("d_inner", 1000,
                     "Dimension of inner hidden size in positionwise "
                     "feed-forward.")
flags.DEFINE_float("dropout", 0.1, "Dropout rate.")
flags.DEFINE_float("dropatt", 0.1, "Attention dropout rate.")
flags.DEFINE_bool("untie_r", False, "Untie r_w_bias and r_r_bias.")
flags.DEFINE_integer("div_val", 1,
                     "Divide the embedding size by this val for each bin.")
flags.DEFINE_bool("proj_share_all_but_first", False,
                  "True to share all but first projs, False not to share.")
flags.DEFINE_bool("proj_same_dim", True,
                  "Project the bin with the same dimension.")
flags.DEFINE_enum("init", "normal", ["normal", "uniform"],
                  "Initialization method.")
flags.DEFINE_float("init_std", 0.02, "Initialization std when init is normal.")
flags.DEFINE_float("proj_init_std", 0.01,
                   "Initialization std for embedding projection.")
flags.DEFINE_float("init_range", 0.1,
                   "Initialization range when init is uniform.")

# New flags.
flags.DEFINE_string("input_file", None,
                    "Text file whose bytes are the corpus.")
flags.DEFINE_float("valid_fraction", 0.05,
                   "Share of the bytes for valid (after train).")
flags.DEFINE_float("test_fraction", 0.05,
                   "Share of the bytes for test (at the end).")
flags.DEFINE_enum(
    "distribution_strategy", None, list(distribution.STRATEGIES),
    "tf.distribute strategy; default: mirrored with more than one GPU, else "
    "one_device. mirrored without GPUs uses every logical CPU device.")
flags.DEFINE_integer("num_gpus", None,
                     "GPUs to use (default: all visible ones).")
flags.DEFINE_integer("keep_checkpoint_max", 5,
                     "Checkpoints to keep in model_dir (0: all).")
flags.DEFINE_integer("seed", None, "Seed of initialization and dropout.")
script_flags.define_dtype_flag()
flags.adopt_module_key_flags(script_flags)


def model_config(n_token):
  """The `TransformerXLConfig` of the model flags for `n_token` tokens."""
  return transformer_xl.TransformerXLConfig.from_dict({
      "n_token": n_token, "n_layer": FLAGS.n_layer, "d_model": FLAGS.d_model,
      "d_embed": FLAGS.d_embed, "n_head": FLAGS.n_head,
      "d_head": FLAGS.d_head, "d_inner": FLAGS.d_inner,
      "dropout": FLAGS.dropout, "dropatt": FLAGS.dropatt,
      "mem_len": FLAGS.mem_len, "same_length": FLAGS.same_length,
      "clamp_len": FLAGS.clamp_len, "untie_r": FLAGS.untie_r,
      "init": FLAGS.init, "init_std": FLAGS.init_std,
      "proj_init_std": FLAGS.proj_init_std, "init_range": FLAGS.init_range,
      "cutoffs": [], "div_val": FLAGS.div_val,
      "proj_share_all_but_first": FLAGS.proj_share_all_but_first,
      "proj_same_dim": FLAGS.proj_same_dim}, source="flags")


def main(_):
  logging.set_verbosity(logging.INFO)
  if not FLAGS.do_train and not FLAGS.do_eval:
    raise ValueError("At least one of `do_train` or `do_eval` must be True.")
  for flag in ("input_file", "model_dir"):
    if not getattr(FLAGS, flag):
      raise ValueError("--%s is required" % flag)
  for flag in ("train_batch_size", "eval_batch_size", "tgt_len", "iterations",
               "save_steps"):
    if getattr(FLAGS, flag) <= 0:
      raise ValueError("--%s must be positive, got %d" %
                       (flag, getattr(FLAGS, flag)))
  eval_tgt_len = FLAGS.eval_tgt_len or FLAGS.tgt_len
  strategy = distribution.get_strategy(FLAGS.distribution_strategy,
                                       FLAGS.num_gpus)
  num_replicas = strategy.num_replicas_in_sync
  logging.info("Strategy %s with %d replica(s)", type(strategy).__name__,
               num_replicas)
  trainer_lib.set_dtype_policy(FLAGS.dtype)
  for flag in ("train_batch_size", "eval_batch_size"):
    if getattr(FLAGS, flag) % num_replicas:
      raise ValueError("--%s=%d is not divisible by the %d replicas" %
                       (flag, getattr(FLAGS, flag), num_replicas))
  if FLAGS.seed is not None:
    keras.utils.set_random_seed(FLAGS.seed)

  data_dir = FLAGS.data_dir or os.path.join(FLAGS.model_dir, "data")
  prepared = lm_bytes.prepare_corpus(
      FLAGS.input_file, data_dir, FLAGS.train_batch_size,
      FLAGS.eval_batch_size, FLAGS.tgt_len, eval_tgt_len,
      FLAGS.valid_fraction, FLAGS.test_fraction)
  n_token = prepared["corpus_info"]["vocab_size"]
  logging.info("n_token %d; batches: %s", n_token,
               {k: v for k, v in prepared.items() if k != "corpus_info"})
  config = model_config(n_token)
  tf.io.gfile.makedirs(FLAGS.model_dir)
  with tf.io.gfile.GFile(os.path.join(FLAGS.model_dir, "config.json"),
                         "w") as f:
    json.dump(config.to_dict(), f, indent=2)

  def optimizer_fn():
    return optimization.create_transformer_xl_optimizer(
        FLAGS.learning_rate, FLAGS.train_steps, FLAGS.warmup_steps,
        FLAGS.clip, FLAGS.min_lr_ratio)

  with strategy.scope():
    train_memory = transformer_xl_lm.Memory(
        config, FLAGS.train_batch_size // num_replicas, name="train_mems")
    eval_memory = transformer_xl_lm.Memory(
        config, FLAGS.eval_batch_size // num_replicas, name="eval_mems")
  trainer = trainer_lib.Trainer(
      strategy, lambda: transformer_xl.TransformerXL(config),
      transformer_xl_lm.lm_loss_fn(train_memory), FLAGS.model_dir,
      optimizer_fn=optimizer_fn if FLAGS.do_train else None,
      global_batch_size=FLAGS.train_batch_size,
      iterations_per_loop=FLAGS.iterations,
      save_checkpoints_steps=FLAGS.save_steps,
      keep_checkpoint_max=FLAGS.keep_checkpoint_max,
      log_steps=FLAGS.iterations, dtype=FLAGS.dtype)
  trainer.initialize(FLAGS.init_checkpoint)
  num_params = sum(int(tf.size(v)) for v in trainer.model.trainable_weights)
  logging.info("#params: %d", num_params)

  if FLAGS.do_train:
    train_path = os.path.join(data_dir, lm_bytes.record_file_name(
        "train", FLAGS.train_batch_size, FLAGS.tgt_len))
    trainer.train(
        lambda context, start_step: lm_bytes.input_dataset(
            train_path, FLAGS.train_batch_size, True, context, start_step),
        FLAGS.train_steps)

  if FLAGS.do_eval:
    split = FLAGS.eval_split
    if "%s_num_batch" % split not in prepared:
      raise ValueError("The %s split is empty (--%s_fraction=0)" %
                       (split, split))
    num_batch = prepared["%s_num_batch" % split]
    if FLAGS.max_eval_batch > 0:
      num_batch = min(num_batch, FLAGS.max_eval_batch)
    eval_path = os.path.join(data_dir, lm_bytes.record_file_name(
        split, FLAGS.eval_batch_size, eval_tgt_len))
    eval_memory.reset()
    result = transformer_xl_lm.eval_summary(trainer.evaluate(
        lambda context: lm_bytes.input_dataset(
            eval_path, FLAGS.eval_batch_size, False, context),
        transformer_xl_lm.lm_eval_fn(eval_memory), num_batch))
    logging.info("| %s: %d batches | loss %.2f | pplx %7.2f, bpc %7.4f",
                 split, num_batch, result["loss"], result["pplx"],
                 result["bpc"])
    if trainer.is_chief:
      metrics.write_eval_results(
          os.path.join(FLAGS.model_dir, "eval_results.txt"), result)


def run_main():
  """Entry point of the `bert-run-transformer-xl` console script."""
  cli.run(main, __name__, required=[])


if __name__ == "__main__":
  run_main()
