"""Extract pre-computed feature vectors from BERT (the original script's flags)."""

from absl import app
from absl import flags
from absl import logging

from bert_tf import cli
from bert_tf import tokenization
from bert_tf.modeling import BertConfig
from bert_tf.tasks import feature_extraction
from bert_tf.training import script_flags

FLAGS = flags.FLAGS

flags.DEFINE_string("input_file", None,
                    "Text file, one example a line: `text_a` or "
                    "`text_a ||| text_b`.")
flags.DEFINE_string("output_file", None, "JSON-lines output file.")
script_flags.define_model_flags(
    "bert_config_file", "init_checkpoint", "vocab_file", "spm_model_file",
    "do_lower_case")
flags.DEFINE_string("layers", "-1,-2,-3,-4",
                    "Comma-separated indexes of the encoder layers to output.")
flags.DEFINE_integer(
    "max_seq_length", 128,
    "The maximum total input sequence length after WordPiece tokenization. "
    "Sequences longer than this will be truncated, and sequences shorter "
    "than this will be padded.")
flags.DEFINE_integer("batch_size", 32, "Batch size for predictions.")
# The original's --use_tpu, --master, --num_tpu_cores, defined once with the
# other scripts' TPU flags (scripts may share a process, e.g. in tests).
script_flags.define_tpu_flags()
script_flags.define_dynamic_padding_flag()
flags.adopt_module_key_flags(script_flags)
flags.DEFINE_bool(
    "use_one_hot_embeddings", False,
    "If True, tf.one_hot will be used for embedding lookups, otherwise "
    "a gather. On TPUs, this should be True since it is much faster.")


def main(_):
  logging.set_verbosity(logging.INFO)
  if FLAGS.use_tpu:
    raise app.UsageError(
        "--use_tpu: extract_features.py runs on CPU/GPU in this version; "
        "drop the flag (the outputs are the same).")
  if not FLAGS.vocab_file and not FLAGS.spm_model_file:
    raise app.UsageError("--vocab_file (WordPiece) or --spm_model_file "
                         "(SentencePiece, ALBERT) is required")
  tokenization.validate_case_matches_checkpoint(FLAGS.do_lower_case,
                                                FLAGS.init_checkpoint)
  config = BertConfig.from_json_file(FLAGS.bert_config_file)
  tokenizer = tokenization.FullTokenizer(
      FLAGS.vocab_file, FLAGS.do_lower_case,
      spm_model_file=FLAGS.spm_model_file)
  config.check_vocab_size(len(tokenizer.vocab),
                          FLAGS.spm_model_file or FLAGS.vocab_file)
  count = feature_extraction.run(
      input_file=FLAGS.input_file,
      output_file=FLAGS.output_file,
      bert_config=config,
      init_checkpoint=FLAGS.init_checkpoint,
      tokenizer=tokenizer,
      layers=FLAGS.layers,
      max_seq_length=FLAGS.max_seq_length,
      batch_size=FLAGS.batch_size,
      use_one_hot_embeddings=FLAGS.use_one_hot_embeddings,
      dynamic_padding=script_flags.dynamic_padding())
  logging.info("Wrote features of %d examples to %s", count,
               FLAGS.output_file)


def run_main():
  """Entry point of the `bert-extract-features` console script."""
  cli.run(main, __name__, required=["input_file", "bert_config_file",
                                    "init_checkpoint", "output_file"])


if __name__ == "__main__":
  run_main()
