"""Convert BERT/ALBERT checkpoints between TF1, Hugging Face, keras-hub and Model Garden.

    python convert_checkpoint.py --input=uncased_L-12_H-768_A-12 --output=hf_dir --to=hf
    python convert_checkpoint.py --input=hf_dir --output=tf1_dir --to=tf1

The logic is `bert_tf.interop` (see its docstring for what each format holds).
"""

from absl import flags
from absl import logging

from bert_tf import cli
from bert_tf import interop

FLAGS = flags.FLAGS

flags.DEFINE_string("input", None,
                    "The checkpoint to convert: a TF1 prefix or directory, a "
                    "Hugging Face directory, a keras-hub preset directory or a "
                    "Model Garden checkpoint directory.")
flags.DEFINE_string("output", None, "The directory to write.")
flags.DEFINE_enum("to", None, list(interop.FORMATS), "The output format.")
flags.DEFINE_enum("from", "auto", ["auto"] + list(interop.FORMATS),
                  "The input format; `auto` detects it from --input.")
flags.DEFINE_string(
    "bert_config_file", None,
    "bert_config.json (or albert_config.json) of the input; required where "
    "the input carries no config (a bare TF1 prefix, a Model Garden "
    "checkpoint), and it takes precedence over a config the input carries.")
flags.DEFINE_alias("albert_config_file", "bert_config_file")
flags.DEFINE_string("vocab_file", None,
                    "WordPiece vocabulary to ship with the output (default: "
                    "the one found with the input).")
flags.DEFINE_string("spm_model_file", None,
                    "SentencePiece model to ship with the output (default: "
                    "the one found with the input).")
flags.DEFINE_bool("do_lower_case", None,
                  "The tokenizer's casing, written where the output format "
                  "records it (default: what the input records).")
flags.DEFINE_bool("overwrite", False,
                  "Replace a non-empty --output directory.")


def main(_):
  """Converts --input to --output.

  Returns:
    The `interop.WriteReport` (for callers in Python; the command line
    exits with status 0, see `run_main`).
  """
  logging.set_verbosity(logging.INFO)
  report = interop.convert(
      FLAGS.input, FLAGS.output, FLAGS.to, from_format=FLAGS["from"].value,
      overwrite=FLAGS.overwrite, bert_config_file=FLAGS.bert_config_file,
      vocab_file=FLAGS.vocab_file, spm_model_file=FLAGS.spm_model_file,
      do_lower_case=FLAGS.do_lower_case)
  logging.info("Wrote %d tensors to %s (%s)", len(report.written),
               report.output, report.to_format)
  return report


def run_main():
  """Entry point of the `bert-convert-checkpoint` console script."""
  cli.run(main, __name__, required=["input", "output", "to"])


if __name__ == "__main__":
  run_main()
