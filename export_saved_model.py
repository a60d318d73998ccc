"""Exports a BERT checkpoint as a SavedModel serving ids, tf.Examples and raw text."""

from absl import flags
from absl import logging

from bert_tf import cli
from bert_tf import serving
from bert_tf import tokenization
from bert_tf.modeling import BertConfig

FLAGS = flags.FLAGS

flags.DEFINE_string("bert_config_file", None,
                    "The config json file of the BERT model (or an ALBERT "
                    "albert_config.json).")
flags.DEFINE_alias("albert_config_file", "bert_config_file")  # ALBERT's name
flags.DEFINE_string("init_checkpoint", None,
                    "Checkpoint prefix or directory holding the weights (a "
                    "legacy TF1 checkpoint or one of this project's).")
flags.DEFINE_string("vocab_file", None,
                    "The vocabulary file; it travels with the export as an "
                    "asset for the raw-text signature.")
flags.DEFINE_string("spm_model_file", None,
                    "A SentencePiece model (ALBERT) for the raw-text "
                    "signature, instead of --vocab_file; it travels with the "
                    "export as an asset.")
flags.DEFINE_bool("do_lower_case", True,
                  "Whether the model is uncased (lower-case the input text).")
flags.DEFINE_integer("max_seq_length", 128,
                     "Padded length of the tf.Example inputs; the most tokens "
                     "of a raw-text input.")
flags.DEFINE_bool("pad_text_to_longest", True,
                  "serve_text of a classifier or regression export pads a "
                  "request to its longest text (rounded up to a multiple of "
                  "8), not to --max_seq_length: the same outputs, faster for "
                  "short texts. Other model types pad to --max_seq_length "
                  "(their outputs are per token or position).")
flags.DEFINE_enum("model_type", "encoder", list(serving.MODEL_TYPES),
                  "Which outputs to serve.")
flags.DEFINE_integer("num_labels", 2, "Number of classes (classifier).")
flags.DEFINE_integer("max_predictions_per_seq", 20,
                     "Masked positions per tf.Example (pretraining).")
flags.DEFINE_string("export_dir", None, "Output directory of the SavedModel.")
flags.DEFINE_bool("overwrite", False, "Replace a non-empty --export_dir.")
flags.DEFINE_string(
    "signatures", ",".join(serving.SIGNATURES),
    "Comma-separated signatures to export, from %s. Only serve_text carries "
    "TensorFlow Text ops: without it the export loads with TensorFlow alone "
    "(TF Serving, saved_model_cli run) and needs no vocabulary." %
    ", ".join(serving.SIGNATURES))


def main(_):
  logging.set_verbosity(logging.INFO)
  tokenization.validate_case_matches_checkpoint(FLAGS.do_lower_case,
                                                FLAGS.init_checkpoint)
  path = serving.export(
      config=BertConfig.from_json_file(FLAGS.bert_config_file),
      init_checkpoint=FLAGS.init_checkpoint,
      vocab_file=FLAGS.vocab_file,
      do_lower_case=FLAGS.do_lower_case,
      max_seq_length=FLAGS.max_seq_length,
      model_type=FLAGS.model_type,
      export_dir=FLAGS.export_dir,
      num_labels=FLAGS.num_labels,
      overwrite=FLAGS.overwrite,
      max_predictions_per_seq=FLAGS.max_predictions_per_seq,
      spm_model_file=FLAGS.spm_model_file,
      signatures=FLAGS.signatures,
      pad_text_to_longest=FLAGS.pad_text_to_longest)
  logging.info("Exported a %s SavedModel to %s", FLAGS.model_type, path)


def run_main():
  """Entry point of the `bert-export-saved-model` console script."""
  cli.run(main, __name__,
          required=["bert_config_file", "init_checkpoint", "export_dir"])


if __name__ == "__main__":
  run_main()
