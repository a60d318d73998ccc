"""BERT fine-tuning for sentence (pair) classification (the original's flags).

Fine-tunes `BertClassifier` (top-level `output_weights` / `output_bias`) on a
GLUE / XNLI task, writing `output_dir/model.ckpt-<step>` with the original
names; `--do_eval` writes `eval_results.txt` and `--do_predict`
`test_results.tsv`. Without `--do_train` they use the latest checkpoint of
`output_dir`, else `--init_checkpoint` (e.g. an original fine-tuned model).
New flags choose the distribution strategy, the compute dtype and XLA.
"""

import os

from absl import flags
from absl import logging

from bert_tf import cli
from bert_tf import file_io
from bert_tf import serving
from bert_tf import tokenization
from bert_tf.data import glue
from bert_tf.modeling import BertConfig
from bert_tf.tasks import classifier
from bert_tf.training import script_flags

FLAGS = flags.FLAGS

# The original flags, with their defaults.
script_flags.define_original_flags(
    "bert_config_file", "vocab_file", "spm_model_file", "output_dir",
    "init_checkpoint", "do_lower_case", "do_train", "do_eval",
    "eval_batch_size")
flags.DEFINE_string(
    "data_dir", None,
    "The input data dir. Should contain the .tsv files (or other data files) "
    "for the task.")
flags.DEFINE_string("task_name", None,
                    "The name of the task to train (case-insensitive): " +
                    ", ".join(glue.PROCESSORS) + ".")
flags.DEFINE_integer(
    "max_seq_length", 128,
    "The maximum total input sequence length after WordPiece tokenization. "
    "Sequences longer than this will be truncated, and sequences shorter "
    "than this will be padded.")
flags.DEFINE_bool(
    "do_predict", False,
    "Whether to run the model in inference mode on the test set.")
flags.DEFINE_integer("predict_batch_size", 8, "Total batch size for predict.")

script_flags.define_finetuning_flags()
script_flags.define_log_examples_flag(5)

# New flags.
script_flags.define_tpu_flags()
script_flags.define_training_flags()
script_flags.define_export_flags()
script_flags.define_dynamic_padding_flag()
flags.adopt_module_key_flags(script_flags)


def main(_):
  logging.set_verbosity(logging.INFO)
  tokenization.validate_case_matches_checkpoint(FLAGS.do_lower_case,
                                                FLAGS.init_checkpoint)
  if not FLAGS.do_train and not FLAGS.do_eval and not FLAGS.do_predict:
    raise ValueError(
        "At least one of `do_train`, `do_eval` or `do_predict' must be True.")
  for flag in ("data_dir", "task_name", "bert_config_file", "output_dir"):
    if not getattr(FLAGS, flag):
      raise ValueError("--%s is required" % flag)
  if not FLAGS.vocab_file and not FLAGS.spm_model_file:
    raise ValueError("--vocab_file (WordPiece) or --spm_model_file "
                     "(SentencePiece, ALBERT) is required")
  config = BertConfig.from_json_file(FLAGS.bert_config_file)
  config.check_max_seq_length(FLAGS.max_seq_length)
  if FLAGS.export_dir:
    serving.check_export_dir(FLAGS.export_dir)
  processor = glue.get_processor(FLAGS.task_name)
  tokenizer = tokenization.FullTokenizer(
      vocab_file=FLAGS.vocab_file, do_lower_case=FLAGS.do_lower_case,
      spm_model_file=FLAGS.spm_model_file)
  config.check_vocab_size(len(tokenizer.vocab),
                          FLAGS.spm_model_file or FLAGS.vocab_file)

  # Every input file is read and every label checked before any work.
  train_examples = (processor.get_train_examples(FLAGS.data_dir)
                    if FLAGS.do_train else [])
  dev_examples = (processor.get_dev_examples(FLAGS.data_dir)
                  if FLAGS.do_eval else [])
  test_examples = (processor.get_test_examples(FLAGS.data_dir)
                   if FLAGS.do_predict else [])
  for examples in (train_examples, dev_examples):
    glue.check_labels(examples, processor.get_labels(),
                      processor.is_regression)

  strategy = script_flags.strategy_from_flags()
  with file_io.output_directory(FLAGS.output_dir):
    _run(config, processor, tokenizer, strategy, train_examples,
         dev_examples, test_examples)


def _run(config, processor, tokenizer, strategy, train_examples, dev_examples,
         test_examples):
  """Trains, evaluates, predicts and exports as the flags say."""
  dynamic_padding = script_flags.dynamic_padding(strategy)
  trainer, num_train_steps = script_flags.finetuning_trainer(
      strategy, classifier.model_fn(config, processor), classifier.loss_fn,
      len(train_examples))

  if FLAGS.do_train:
    train_file = os.path.join(FLAGS.output_dir, "train.tf_record")
    classifier.write_examples(train_examples, processor, FLAGS.max_seq_length,
                              tokenizer, train_file, FLAGS.log_examples)
    script_flags.train_on_records(
        trainer, train_file,
        lambda batch_size, context: glue.file_based_dataset(
            train_file, FLAGS.max_seq_length, batch_size, is_training=True,
            drop_remainder=True, is_regression=processor.is_regression,
            input_context=context, seed=FLAGS.seed,
            dynamic_padding=dynamic_padding),
        num_train_steps, [("Num examples", len(train_examples))])

  if FLAGS.do_eval:
    classifier.evaluate(trainer, dev_examples, processor, FLAGS.task_name,
                        tokenizer, FLAGS.output_dir, FLAGS.max_seq_length,
                        FLAGS.eval_batch_size, pad_to_batch=FLAGS.use_tpu,
                        log_examples=FLAGS.log_examples,
                        dynamic_padding=dynamic_padding)

  if FLAGS.do_predict:
    classifier.predict(trainer, test_examples, processor, tokenizer,
                       FLAGS.output_dir, FLAGS.max_seq_length,
                       FLAGS.predict_batch_size, pad_to_batch=FLAGS.use_tpu,
                       log_examples=FLAGS.log_examples,
                       dynamic_padding=dynamic_padding)

  if FLAGS.export_dir and trainer.is_chief:
    serving.export(
        config, None, FLAGS.vocab_file, FLAGS.do_lower_case,
        FLAGS.max_seq_length,
        "regression" if processor.is_regression else "classifier",
        FLAGS.export_dir, num_labels=len(processor.get_labels()),
        model=trainer.model, spm_model_file=FLAGS.spm_model_file)
    logging.info("Exported the fine-tuned model to %s", FLAGS.export_dir)


def run_main():
  """Entry point of the `bert-run-classifier` console script."""
  cli.run(main, __name__,
          required=["data_dir", "task_name", "bert_config_file", "output_dir"])


if __name__ == "__main__":
  run_main()
