"""Run BERT on SQuAD 1.1 and SQuAD 2.0 (the original's flags).

Fine-tunes `BertSquad` (`cls/squad/output_weights`, `cls/squad/output_bias`)
on `--train_file`, writing `output_dir/model.ckpt-<step>` with the original
names; `--do_predict` writes `predictions.json`, `nbest_predictions.json`,
`null_odds.json` (with `--version_2_with_negative`) and, when
`--predict_file` has gold answers, `squad_eval_results.json` with the official
evaluation script's results. Without `--do_train`, prediction uses the latest
checkpoint of `output_dir`, else `--init_checkpoint`. New flags choose the
distribution strategy, the compute dtype and XLA.

With `--spm_model_file` (ALBERT, with its `--albert_config_file`, or any
config) the questions and contexts are SentencePiece pieces and the features
google-research/albert's (`bert_tf.data.squad_sentencepiece`: pieces aligned
to the context's characters, `p_mask` written too); answers are cut out of
the context by character offsets. The head and the outputs stay the above
(ALBERT's run_squad_v1), unless `--squad_head=albert_v2`: ALBERT's
run_squad_v2 answer-verification head (`BertSquadV2`, with
`--version_2_with_negative`; `--start_n_top`, `--end_n_top`,
`--dropout_prob` as ALBERT's), its loss, predictions and null odds
(`bert_tf.tasks.squad_albert_v2`); the null odds threshold is
`--null_score_diff_threshold` when given, else ALBERT's best-F1 search on
the predict file's gold answers.
"""

import os

from absl import flags
from absl import logging

from bert_tf import cli
from bert_tf import file_io
from bert_tf import serving
from bert_tf import tokenization
from bert_tf.data import squad as squad_data
from bert_tf.modeling import BertConfig
from bert_tf.tasks import squad
from bert_tf.tasks import squad_albert_v2
from bert_tf.training import script_flags

FLAGS = flags.FLAGS

# The original flags, with their defaults.
script_flags.define_original_flags(
    "bert_config_file", "vocab_file", "spm_model_file", "output_dir",
    "init_checkpoint", "do_lower_case", "do_train")
flags.DEFINE_string("train_file", None,
                    "SQuAD json for training. E.g., train-v1.1.json")
flags.DEFINE_string(
    "predict_file", None,
    "SQuAD json for predictions. E.g., dev-v1.1.json or test-v1.1.json")
flags.DEFINE_integer(
    "max_seq_length", 384,
    "The maximum total input sequence length after WordPiece tokenization. "
    "Sequences longer than this will be truncated, and sequences shorter "
    "than this will be padded.")
flags.DEFINE_integer(
    "doc_stride", 128,
    "When splitting up a long document into chunks, how much stride to "
    "take between chunks.")
flags.DEFINE_integer(
    "max_query_length", 64,
    "The maximum number of tokens for the question. Questions longer than "
    "this will be truncated to this length.")
flags.DEFINE_bool("do_predict", False, "Whether to run eval on the dev set.")
flags.DEFINE_integer("predict_batch_size", 8,
                     "Total batch size for predictions.")
flags.DEFINE_integer(
    "n_best_size", 20,
    "The total number of n-best predictions to generate in the "
    "nbest_predictions.json output file.")
flags.DEFINE_integer(
    "max_answer_length", 30,
    "The maximum length of an answer that can be generated. This is needed "
    "because the start and end predictions are not conditioned on one another.")
flags.DEFINE_bool(
    "verbose_logging", False,
    "If true, all of the warnings related to data processing will be printed. "
    "A number of warnings are expected for a normal SQuAD evaluation.")
flags.DEFINE_bool(
    "version_2_with_negative", False,
    "If true, the SQuAD examples contain some that do not have an answer.")
flags.DEFINE_float(
    "null_score_diff_threshold", 0.0,
    "If null_score - best_non_null is greater than the threshold predict null.")

script_flags.define_finetuning_flags()
script_flags.define_log_examples_flag(20)

# ALBERT's run_squad_v2 flags, for --squad_head=albert_v2.
flags.DEFINE_integer("start_n_top", 5, "beam size for the start positions.")
flags.DEFINE_integer("end_n_top", 5, "beam size for the end positions.")
flags.DEFINE_float("dropout_prob", 0.1, "dropout probability.")

# New flags.
flags.DEFINE_enum(
    "squad_head", "span", ["span", "albert_v2"],
    "span: the original's start/end head (cls/squad). albert_v2: ALBERT's "
    "run_squad_v2 head (start_logits, end_logits conditioned on the start, "
    "answer_class), with --spm_model_file and --version_2_with_negative.")
script_flags.define_tpu_flags()
script_flags.define_training_flags()
script_flags.define_export_flags()
script_flags.define_dynamic_padding_flag()
flags.adopt_module_key_flags(script_flags)


def validate_flags_or_throw(config):
  """The original flag checks, plus the required-flag checks.

  Args:
    config: the `BertConfig`.

  Raises:
    ValueError: naming the flag.
  """
  for flag in ("bert_config_file", "output_dir"):
    if not getattr(FLAGS, flag):
      raise ValueError("--%s is required" % flag)
  if not FLAGS.vocab_file and not FLAGS.spm_model_file:
    raise ValueError("--vocab_file (WordPiece) or --spm_model_file "
                     "(SentencePiece, ALBERT) is required")
  if not FLAGS.do_train and not FLAGS.do_predict:
    raise ValueError("At least one of `do_train` or `do_predict` must be True.")
  if FLAGS.do_train and not FLAGS.train_file:
    raise ValueError(
        "If `do_train` is True, then `train_file` must be specified.")
  if FLAGS.do_predict and not FLAGS.predict_file:
    raise ValueError(
        "If `do_predict` is True, then `predict_file` must be specified.")
  config.check_max_seq_length(FLAGS.max_seq_length)
  if FLAGS.max_seq_length <= FLAGS.max_query_length + 3:
    raise ValueError(
        "The max_seq_length (%d) must be greater than max_query_length "
        "(%d) + 3" % (FLAGS.max_seq_length, FLAGS.max_query_length))
  if FLAGS.squad_head == "albert_v2":
    if not FLAGS.spm_model_file or not FLAGS.version_2_with_negative:
      raise ValueError("--squad_head=albert_v2 needs --spm_model_file "
                       "(ALBERT's features, with p_mask) and "
                       "--version_2_with_negative")
    if FLAGS.start_n_top < 1 or FLAGS.end_n_top < 1:
      raise ValueError("--start_n_top and --end_n_top must be at least 1, "
                       "found %d and %d" % (FLAGS.start_n_top,
                                            FLAGS.end_n_top))
    if FLAGS.export_dir:
      raise ValueError("--export_dir is not supported with "
                       "--squad_head=albert_v2 (the serving signatures "
                       "have no p_mask input)")


def main(_):
  logging.set_verbosity(logging.INFO)
  tokenization.validate_case_matches_checkpoint(FLAGS.do_lower_case,
                                                FLAGS.init_checkpoint)
  config = BertConfig.from_json_file(FLAGS.bert_config_file)
  validate_flags_or_throw(config)
  if FLAGS.export_dir:
    serving.check_export_dir(FLAGS.export_dir)
  tokenizer = tokenization.FullTokenizer(
      vocab_file=FLAGS.vocab_file, do_lower_case=FLAGS.do_lower_case,
      spm_model_file=FLAGS.spm_model_file)
  config.check_vocab_size(len(tokenizer.vocab),
                          FLAGS.spm_model_file or FLAGS.vocab_file)

  # Both SQuAD files are read (and so checked) before any work.
  train_examples = (squad.read_examples(
      FLAGS.train_file, tokenizer, is_training=True,
      version_2_with_negative=FLAGS.version_2_with_negative)
                    if FLAGS.do_train else [])
  predict_examples = (squad.read_examples(FLAGS.predict_file, tokenizer,
                                          is_training=False)
                      if FLAGS.do_predict else [])

  strategy = script_flags.strategy_from_flags()
  with file_io.output_directory(FLAGS.output_dir):
    _run(config, tokenizer, strategy, train_examples, predict_examples)


def _run(config, tokenizer, strategy, train_examples, predict_examples):
  """Trains, predicts and exports as the flags say, into --output_dir."""
  dynamic_padding = script_flags.dynamic_padding(strategy)
  albert_v2 = FLAGS.squad_head == "albert_v2"
  if albert_v2:
    model_fn = squad_albert_v2.model_fn(config, FLAGS.start_n_top,
                                        FLAGS.end_n_top, FLAGS.dropout_prob)
    loss_fn = squad_albert_v2.loss_fn
  else:
    model_fn, loss_fn = squad.model_fn(config), squad.loss_fn
  trainer, num_train_steps = script_flags.finetuning_trainer(
      strategy, model_fn, loss_fn, len(train_examples))

  if FLAGS.do_train:
    train_record = os.path.join(FLAGS.output_dir, "train.tf_record")
    num_features = squad.write_train_features(
        train_examples, tokenizer, train_record, FLAGS.max_seq_length,
        FLAGS.doc_stride, FLAGS.max_query_length, FLAGS.log_examples)
    script_flags.train_on_records(
        trainer, train_record,
        lambda batch_size, context: squad_data.squad_dataset(
            train_record, FLAGS.max_seq_length, batch_size, is_training=True,
            drop_remainder=True, input_context=context, seed=FLAGS.seed,
            dynamic_padding=dynamic_padding, answer_verification=albert_v2),
        num_train_steps, [("Num orig examples", len(train_examples)),
                          ("Num split examples", num_features)])

  if FLAGS.do_predict:
    shared_args = (trainer, FLAGS.predict_file, predict_examples, tokenizer,
                   FLAGS.output_dir, FLAGS.max_seq_length, FLAGS.doc_stride,
                   FLAGS.max_query_length, FLAGS.predict_batch_size,
                   FLAGS.n_best_size, FLAGS.max_answer_length)
    options = dict(log_examples=FLAGS.log_examples,
                   dynamic_padding=dynamic_padding)
    if albert_v2:
      squad_albert_v2.predict(
          *shared_args, FLAGS.start_n_top, FLAGS.end_n_top,
          FLAGS.null_score_diff_threshold
          if FLAGS["null_score_diff_threshold"].present else None, **options)
    else:
      squad.predict(
          *shared_args, FLAGS.do_lower_case, FLAGS.version_2_with_negative,
          FLAGS.null_score_diff_threshold, FLAGS.verbose_logging, **options)

  if FLAGS.export_dir and trainer.is_chief:
    serving.export(config, None, FLAGS.vocab_file, FLAGS.do_lower_case,
                   FLAGS.max_seq_length, "squad", FLAGS.export_dir,
                   model=trainer.model, spm_model_file=FLAGS.spm_model_file)
    logging.info("Exported the fine-tuned model to %s", FLAGS.export_dir)


def run_main():
  """Entry point of the `bert-run-squad` console script."""
  cli.run(main, __name__,
          required=["bert_config_file", "output_dir"])


if __name__ == "__main__":
  run_main()
