"""Run masked LM / next sentence pretraining for BERT (the original's flags).

Trains `BertPretrainer` on TFRecords of create_pretraining_data.py with the
original optimizer, writes `output_dir/model.ckpt-<step>` checkpoints under the
original variable names (resuming from the latest one), and evaluates into
`output_dir/eval_results.txt`. New flags choose the distribution strategy, the
compute dtype, XLA, LAMB and dynamic masking.

The objectives follow the records: the original ones (masked LM + next
sentence); without `next_sentence_labels` (`--sentence_task=none`) no next
sentence head; with `masked_lm_span_*` (`--masking=span`) SpanBERT's span
boundary objective as well (loss = masked LM + span boundary [+ next
sentence]; eval adds `span_boundary_accuracy` and `span_boundary_loss`).
"""

from absl import flags
from absl import logging
import tensorflow as tf

from bert_tf import cli
from bert_tf import file_io
from bert_tf.data import record_format
from bert_tf.modeling import BertConfig
from bert_tf.tasks import pretraining
from bert_tf.training import metrics
from bert_tf.training import optimization
from bert_tf.training import script_flags
from bert_tf.training import summaries
from bert_tf.training import trainer as trainer_lib

FLAGS = flags.FLAGS

# The original flags, with their defaults.
script_flags.define_model_flags("bert_config_file", "output_dir", "init_checkpoint")
flags.DEFINE_string(
    "input_file", None,
    "Input TF example files (can be a glob or comma separated).")
flags.DEFINE_integer(
    "max_seq_length", 128,
    "The maximum total input sequence length after WordPiece tokenization; "
    "must match the data.")
flags.DEFINE_integer(
    "max_predictions_per_seq", 20,
    "Maximum number of masked LM predictions per sequence; must match the "
    "data.")
flags.DEFINE_bool("do_train", False, "Whether to run training.")
flags.DEFINE_bool("do_eval", False, "Whether to run eval on the dev set.")
flags.DEFINE_integer("train_batch_size", 32, "Total batch size for training.")
flags.DEFINE_integer("eval_batch_size", 8, "Total batch size for eval.")
flags.DEFINE_float("learning_rate", 5e-5, "The initial learning rate for Adam.")
flags.DEFINE_integer("num_train_steps", 100000, "Number of training steps.")
flags.DEFINE_integer("num_warmup_steps", 10000, "Number of warmup steps.")
flags.DEFINE_integer("save_checkpoints_steps", 1000,
                     "How often to save the model checkpoint.")
flags.DEFINE_integer("iterations_per_loop", 1000,
                     "How many steps to make in each estimator call.")
flags.DEFINE_integer("max_eval_steps", 100, "Maximum number of eval steps.")

# New flags.
script_flags.define_tpu_flags()
script_flags.define_training_flags()
script_flags.define_dynamic_padding_flag()
flags.adopt_module_key_flags(script_flags)
flags.DEFINE_enum("optimizer", "adamw", list(optimization.OPTIMIZERS),
                  "adamw (original BERT) or lamb (as ALBERT).")
flags.DEFINE_bool(
    "dynamic_masking", False,
    "Draw new masked positions every time a record is read (RoBERTa-style); "
    "stored masks are undone first, so any pretraining record works, also "
    "ones written with all masked_lm_weights 0. Needs --vocab_file or "
    "--spm_model_file. Eval "
    "masks are drawn from --seed (0 if unset), the same on every run.")
flags.DEFINE_string("vocab_file", None,
                    "Vocabulary ([MASK], [CLS], [SEP] ids) for "
                    "--dynamic_masking.")
flags.DEFINE_string("spm_model_file", None,
                    "SentencePiece model (ALBERT) whose [MASK], [CLS], [SEP] "
                    "pieces --dynamic_masking uses, instead of --vocab_file.")
flags.DEFINE_float("masked_lm_prob", 0.15,
                   "Fraction of the tokens --dynamic_masking masks.")
flags.DEFINE_bool(
    "deterministic", False,
    "Enable TensorFlow op determinism (with --seed: bitwise repeatable runs, "
    "also across an interruption and resume).")


def main(_):
  logging.set_verbosity(logging.INFO)
  if not FLAGS.do_train and not FLAGS.do_eval:
    raise ValueError("At least one of `do_train` or `do_eval` must be True.")
  for flag in ("bert_config_file", "input_file", "output_dir"):
    if not getattr(FLAGS, flag):
      raise ValueError("--%s is required" % flag)
  if FLAGS.dynamic_masking and not (FLAGS.vocab_file or
                                    FLAGS.spm_model_file):
    raise ValueError("--dynamic_masking needs --vocab_file or "
                     "--spm_model_file")
  config = BertConfig.from_json_file(FLAGS.bert_config_file)
  config.check_max_seq_length(FLAGS.max_seq_length)
  # Before any TensorFlow op runs (multi_worker_mirrored requires it).
  strategy = script_flags.strategy_from_flags()
  logging.info("Strategy %s with %d replica(s)", type(strategy).__name__,
               strategy.num_replicas_in_sync)
  if FLAGS.deterministic:
    tf.config.experimental.enable_op_determinism()

  with file_io.output_directory(FLAGS.output_dir):
    _run(config, strategy)


def _run(config, strategy):
  """Reads the records, trains and evaluates as the flags say."""
  inputs = pretraining.PretrainingInputs.from_patterns(
      FLAGS.input_file, FLAGS.max_seq_length, FLAGS.max_predictions_per_seq,
      FLAGS.dynamic_masking, FLAGS.vocab_file, FLAGS.spm_model_file,
      FLAGS.masked_lm_prob)
  if inputs.dynamic_masking:
    config.check_vocab_size(inputs.dynamic_masking.vocab_size,
                            FLAGS.spm_model_file or FLAGS.vocab_file)

  def optimizer_fn():
    return optimization.create_optimizer(
        FLAGS.learning_rate, FLAGS.num_train_steps, FLAGS.num_warmup_steps,
        FLAGS.optimizer)

  trainer = trainer_lib.Trainer(
      strategy, pretraining.model_fn(config, inputs.record_tasks),
      pretraining.loss_fn, FLAGS.output_dir,
      optimizer_fn=optimizer_fn if FLAGS.do_train else None,
      global_batch_size=FLAGS.train_batch_size,
      **script_flags.trainer_options())
  trainer.initialize(FLAGS.init_checkpoint)

  if FLAGS.do_train:
    logging.info("***** Running training *****")
    logging.info("  Batch size = %d", FLAGS.train_batch_size)
    with record_format.corrupt_files_named(inputs.input_files):
      trainer.train(
          inputs.train_dataset_fn(FLAGS.train_batch_size, seed=FLAGS.seed),
          FLAGS.num_train_steps)

  if FLAGS.do_eval:
    logging.info("***** Running evaluation *****")
    logging.info("  Batch size = %d", FLAGS.eval_batch_size)
    with record_format.corrupt_files_named(inputs.input_files):
      result = trainer.evaluate(
          inputs.eval_dataset_fn(
              FLAGS.eval_batch_size,
              seed=0 if FLAGS.seed is None else FLAGS.seed,
              dynamic_padding=script_flags.dynamic_padding(strategy)),
          pretraining.eval_fn, FLAGS.max_eval_steps)
    if trainer.is_chief:
      output_eval_file = "%s/eval_results.txt" % FLAGS.output_dir
      metrics.write_eval_results(output_eval_file, result)
      summaries.write_eval_scalars(FLAGS.output_dir, result)
    logging.info("***** Eval results *****")
    for key in sorted(result):
      logging.info("  %s = %s", key, str(result[key]))


def run_main():
  """Entry point of the `bert-run-pretraining` console script."""
  cli.run(main, __name__,
          required=["bert_config_file", "input_file", "output_dir"])


if __name__ == "__main__":
  run_main()
