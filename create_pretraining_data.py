# coding=utf-8
"""Create masked LM / next sentence prediction TF examples for BERT.

The flags and, by default, the output of google-research/bert's
`create_pretraining_data.py`: the same records in the same order for the same
flags. New flags are additive:

  --masking         token (default) | whole_word (= --do_whole_word_mask) |
                    ngram (ALBERT: 1 to --ngram whole words, P(n) ~ 1/n with
                    --favor_shorter_ngram; --do_permutation also permutes
                    as many other n-grams' tokens, predicted too) |
                    span (SpanBERT: spans of whole words, geometric lengths
                    --span_geometric_p clipped at --span_max_length words,
                    one 80/10/10 decision per span; the records carry the
                    span boundaries, masked_lm_span_*)
  --sentence_task   nsp (default) | sop (ALBERT's sentence order) | none (one
                    segment [CLS] A [SEP], no next_sentence_labels feature)
  --spm_model_file  tokenize with a SentencePiece model as ALBERT
                    (--vocab_file then optional)
  --num_workers     N > 1 streams the input through N processes: a different
                    (but reproducible for a given seed and N) stream than the
                    original (cheaper NumPy-backed draws, instances masked in
                    batches of ids, same distributions),
                    whose memory does not grow with the corpus times
                    --dupe_factor; worker i writes `<output>-<i>-of-<N>`.
  --fast_tokenizer  tokenize with the in-graph FastBertTokenizer (same ids,
                    same records).
  --tokenizer_cache_size  tokenize each distinct word once (same records);
                    0 = line by line as the original.
  --beam_runner     run as an Apache Beam pipeline on this runner
                    (DirectRunner, PrismRunner, DataflowRunner, FlinkRunner,
                    SparkRunner; the `beam` extra): reproducible records
                    whatever the runner and its workers, random next
                    sentences from seeded groups of --beam_group_size
                    documents, --num_output_shards shards per output file
                    (`<output>-SSSSS-of-NNNNN`); --beam_pipeline_options
                    passes the runner's own flags.

The work is done by `bert_tf.data.pretraining`.
"""

from absl import flags
from absl import logging

from bert_tf import cli
from bert_tf.data import pretraining

FLAGS = flags.FLAGS

flags.DEFINE_string("input_file", None,
                    "Input raw text file (or comma-separated list of files; "
                    "each item may be a glob pattern).")
flags.DEFINE_string(
    "output_file", None,
    "Output TF example file (or comma-separated list of files).")
flags.DEFINE_string("vocab_file", None,
                    "The vocabulary file that the BERT model was trained on "
                    "(optional with --spm_model_file; if given it must list "
                    "the model's pieces in id order, e.g. its .vocab file).")
flags.DEFINE_string(
    "spm_model_file", None,
    "The model file for SentencePiece tokenization (ALBERT): the text is "
    "normalized as ALBERT's preprocess_text and the ids are the model's.")
flags.DEFINE_bool(
    "do_lower_case", True,
    "Whether to lower case the input text. Should be True for uncased "
    "models and False for cased models.")
flags.DEFINE_bool(
    "do_whole_word_mask", False,
    "Whether to use whole word masking rather than per-WordPiece masking "
    "(the same as --masking=whole_word).")
flags.DEFINE_integer("max_seq_length", 128, "Maximum sequence length.")
flags.DEFINE_integer("max_predictions_per_seq", 20,
                     "Maximum number of masked LM predictions per sequence.")
flags.DEFINE_integer("random_seed", 12345, "Random seed for data generation.")
flags.DEFINE_integer(
    "dupe_factor", 10,
    "Number of times to duplicate the input data (with different masks).")
flags.DEFINE_float("masked_lm_prob", 0.15, "Masked LM probability.")
flags.DEFINE_float(
    "short_seq_prob", 0.1,
    "Probability of creating sequences which are shorter than the "
    "maximum length.")
flags.DEFINE_enum(
    "masking", None, sorted(pretraining.MASKING_STRATEGIES),
    "Which positions the masked LM predicts: `token` (each WordPiece on its "
    "own, the original default), `whole_word` (all pieces of a word "
    "together), `ngram` (ALBERT: n-grams of 1 to --ngram whole words) or "
    "`span` (SpanBERT: spans of whole words, one replacement decision per "
    "span, span boundary features for the SBO). Default: `whole_word` if "
    "--do_whole_word_mask else `token`.")
flags.DEFINE_integer("ngram", 3,
                     "Maximum number of words in an n-gram of --masking=ngram "
                     "(ALBERT's --ngram).")
flags.DEFINE_bool(
    "favor_shorter_ngram", True,
    "--masking=ngram: draw n with probability proportional to 1/n (True, "
    "ALBERT's default) or to 1/(ngram + 1 - n).")
flags.DEFINE_bool(
    "do_permutation", False,
    "--masking=ngram: ALBERT's permutation option: after masking, choose as "
    "many other n-grams again, shuffle their tokens among their positions "
    "and predict them too. The records then hold 2 * "
    "--max_predictions_per_seq predictions (pretrain with that value). "
    "Single stream only (--num_workers=1).")
flags.DEFINE_float(
    "span_geometric_p", 0.2,
    "--masking=span: p of the geometric distribution of span lengths in "
    "words.")
flags.DEFINE_integer(
    "span_max_length", 10,
    "--masking=span: the longest span in words (the geometric distribution "
    "is truncated there and renormalized).")
flags.DEFINE_enum(
    "sentence_task", "nsp", sorted(pretraining.SENTENCE_TASKS),
    "How the segments and the label are made: `nsp` (next sentence "
    "prediction, the original), `sop` (ALBERT's sentence order: the two "
    "parts swapped with probability 0.5, label 1 = swapped) or `none` (one "
    "segment, no label, as SpanBERT).")
flags.DEFINE_integer(
    "num_workers", 1,
    "1: the original single-process stream, record for record. N > 1: N "
    "processes each with its own seed derived from --random_seed and the "
    "worker index, streaming the input per file, drawing from a cheaper "
    "NumPy-backed random source and masking instances in batches of ids, "
    "with the same distributions; a different "
    "stream than the original, reproducible for the same seed and N. Worker "
    "i writes "
    "`<output_file>-<i>-of-<N>` for each output file.")
flags.DEFINE_bool(
    "fast_tokenizer", False,
    "Tokenize with the in-graph FastBertTokenizer (tensorflow-text) in "
    "batches of lines; the ids, so the records, are the same. It costs about "
    "a CPU second per process (TensorFlow's runtime, the WordPiece models), "
    "more than the word cache's Python tokenization of a few MB of text: it "
    "pays when that cache misses often.")
flags.DEFINE_integer(
    "tokenizer_cache_size", 500000,
    "Tokenize each distinct space-separated piece of text once and remember "
    "up to this many (the tokens are the same as line by line); 0 tokenizes "
    "line by line as the original.")
flags.DEFINE_string(
    "beam_runner", None,
    "Run as an Apache Beam pipeline on this runner (e.g. DirectRunner, "
    "PrismRunner, DataflowRunner, FlinkRunner, SparkRunner; needs the "
    "`beam` extra). Absent: the modes above. Documents are never split; "
    "each document's draws are seeded from --random_seed, its file, its "
    "number in the file and the dupe pass, so the records do not depend on "
    "the runner or its workers; random next sentences come from a seeded "
    "group of about --beam_group_size documents instead of the whole corpus.")
flags.DEFINE_string(
    "beam_pipeline_options", "",
    "Beam pipeline flags passed through to the runner, in one string, e.g. "
    "\"--direct_num_workers=2 --direct_running_mode=multi_processing\" or "
    "\"--project=P --region=R --temp_location=gs://B/tmp\" (not --runner: "
    "that is --beam_runner).")
flags.DEFINE_integer(
    "num_output_shards", 1,
    "--beam_runner: the shards of each output file, written as "
    "`<output_file>-SSSSS-of-NNNNN` (Beam's default shard names; "
    "run_pretraining reads them with --input_file=\"<output_file>-*\"). A "
    "worker sorts one shard in memory: choose enough shards for a shard to "
    "fit.")
flags.DEFINE_integer(
    "log_examples", 20, lower_bound=0, help=
    "How many of the first instances to log in full (tokens and every "
    "feature), as the original's 20; 0 logs none.")
flags.DEFINE_integer(
    "beam_group_size", 2000,
    "--beam_runner: documents per group (on average); a random next "
    "sentence comes from another document of the same group.")


def masking_name(masking, do_whole_word_mask):
  """Resolves --masking against the original --do_whole_word_mask.

  Args:
    masking: the --masking value, or None when not given.
    do_whole_word_mask: the --do_whole_word_mask value.

  Returns:
    A key of `MASKING_STRATEGIES`.

  Raises:
    ValueError: if the two flags disagree.
  """
  if masking is None:
    return "whole_word" if do_whole_word_mask else "token"
  # N-grams are of whole words, as ALBERT's with its --do_whole_word_mask.
  if do_whole_word_mask and masking not in ("whole_word", "ngram"):
    raise ValueError("--do_whole_word_mask=True contradicts --masking=%s" %
                     masking)
  return masking


def masking_from_flags(flag_values):
  """Returns the `MaskingStrategy` of --masking and its own flags.

  Raises:
    ValueError: if the flags disagree, or a --span_* / --ngram flag is given
      for another masking.
  """
  name = masking_name(flag_values.masking, flag_values.do_whole_word_mask)
  sentencepiece = bool(flag_values.spm_model_file)
  own_flags = {pretraining.SpanMasking.name: ("span_geometric_p",
                                              "span_max_length"),
               pretraining.NgramMasking.name: ("ngram", "favor_shorter_ngram",
                                               "do_permutation")}
  for masking, names in own_flags.items():
    for flag in names:
      if masking != name and flag_values[flag].present:
        raise ValueError("--%s applies to --masking=%s only, not --masking=%s"
                         % (flag, masking, name))
  if name == pretraining.SpanMasking.name:
    if sentencepiece:
      raise ValueError("--masking=span works on WordPiece words; with "
                       "--spm_model_file use --masking=ngram, whole_word or "
                       "token")
    return pretraining.SpanMasking(flag_values.span_geometric_p,
                          flag_values.span_max_length)
  if name == pretraining.NgramMasking.name:
    if flag_values.do_permutation and flag_values.num_workers > 1:
      raise ValueError("--do_permutation works in the single stream only "
                       "(--num_workers=1), not --num_workers=%d" %
                       flag_values.num_workers)
    return pretraining.NgramMasking(flag_values.ngram,
                                    flag_values.favor_shorter_ngram,
                           sentencepiece, seed=flag_values.random_seed,
                           permutation=flag_values.do_permutation)
  return pretraining.MASKING_STRATEGIES[name](sentencepiece=sentencepiece)


# The fields of `InstanceOptions` and of `RunOptions` that are the flags of
# the same name.
_INSTANCE_FLAGS = ("max_seq_length", "max_predictions_per_seq",
                   "masked_lm_prob", "short_seq_prob")
_RUN_FLAGS = ("input_file", "output_file", "vocab_file", "do_lower_case",
              "random_seed", "dupe_factor", "num_workers", "fast_tokenizer",
              "tokenizer_cache_size", "spm_model_file", "beam_runner",
              "beam_pipeline_options", "num_output_shards", "beam_group_size")


def options_from_flags(flag_values):
  """Returns the `RunOptions` of parsed flags.

  Raises:
    ValueError: if flags disagree (see `masking_from_flags`), or a Beam flag
      is given without --beam_runner.
  """
  if not flag_values.beam_runner:
    for flag in ("beam_pipeline_options", "num_output_shards",
                 "beam_group_size"):
      if flag_values[flag].present:
        raise ValueError("--%s applies to --beam_runner only" % flag)
  instance = pretraining.InstanceOptions(
      masking=masking_from_flags(flag_values),
      sentence_task=pretraining.SENTENCE_TASKS[flag_values.sentence_task](),
      **_values(flag_values, _INSTANCE_FLAGS))
  return pretraining.RunOptions(
      instance=instance, num_logged_examples=flag_values.log_examples,
      **_values(flag_values, _RUN_FLAGS))


def _values(flag_values, names):
  """{name: value} of the flags `names`."""
  return {name: flag_values[name].value for name in names}


def main(_):
  logging.set_verbosity(logging.INFO)
  pretraining.create_pretraining_data(options_from_flags(FLAGS))


def run_main():
  """Entry point of the `bert-create-pretraining-data` console script."""
  cli.run(main, __name__, required=["input_file", "output_file"])


if __name__ == "__main__":
  run_main()
