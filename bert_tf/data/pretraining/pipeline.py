"""The create_pretraining_data program: text in, pretraining TFRecords out.

`create_pretraining_data(RunOptions)` runs the whole program: flag checks,
vocabulary checks, reading (`documents`), instances (`instances`) and the
records (`record_encoder`, `record_writers`).

`num_workers = 1` is the original stream, record for record, with the whole
corpus in memory as the original (`_run_faithful`). `num_workers > 1`
streams (file, part) units through worker processes with their own seeds and
a cheaper random source (`randomness.NumpyInstanceRandom`, the same
distributions): a different, reproducible stream whose memory holds one unit
at a time (`_run_parallel`). Its workers make the segments with the same loop
(`instances.instance_segments`, on ids) and build, mask and encode them in
batches with NumPy (`batches.InstanceBatcher`). Python's cyclic garbage
collector is paused while instances are made (`without_cyclic_gc`).
"""

from concurrent import futures
import contextlib
import dataclasses
import gc
import multiprocessing
import os
import random
import resource
import time

from absl import logging
import tensorflow as tf

from bert_tf import tokenization
from bert_tf.data import record_encoder
from bert_tf.data import record_format
from bert_tf.data import record_writers
from bert_tf.data.pretraining import batches
from bert_tf.data.pretraining import documents as documents_lib
from bert_tf.data.pretraining import instances as instances_lib
from bert_tf.data.pretraining import masking
from bert_tf.data.pretraining import randomness


@dataclasses.dataclass
class RunOptions:
  """Everything `create_pretraining_data` needs (the script's flags).

  Attributes:
    input_file: comma-separated list of input files or glob patterns.
    output_file: comma-separated list of output files.
    vocab_file: the WordPiece vocabulary (optional with `spm_model_file`).
    do_lower_case: lower case the input text.
    instance: `instances.InstanceOptions`.
    random_seed: seed of `random.Random`.
    dupe_factor: passes over the documents, each with other random choices.
    num_workers: 1 = the original single stream; N > 1 = N processes, see
      `create_pretraining_data`.
    fast_tokenizer: tokenize with the in-graph `FastBertTokenizer` (same ids).
    tokenizer_cache_size: distinct space-separated pieces whose tokens are
      remembered; 0 tokenizes line by line as the original (same tokens).
    num_logged_examples: how many first instances to log in full.
    progress_interval_secs: seconds between progress lines.
    spm_model_file: a SentencePiece model: tokenize as ALBERT (None: the
      WordPiece `vocab_file`).
    beam_runner: None for the modes above; else the Apache Beam runner
      (`DirectRunner`, `DataflowRunner`, ...) that runs
      `beam_pipeline.run_beam`.
    beam_pipeline_options: Beam pipeline flags, one string passed through.
    num_output_shards: the Beam run's shards per output file,
      `<output>-SSSSS-of-NNNNN`.
    beam_group_size: documents per group of the Beam run, the pool its
      random next sentences are drawn from.
  """
  input_file: str
  output_file: str
  vocab_file: str
  do_lower_case: bool = True
  instance: instances_lib.InstanceOptions = dataclasses.field(
      default_factory=instances_lib.InstanceOptions)
  random_seed: int = 12345
  dupe_factor: int = 10
  num_workers: int = 1
  fast_tokenizer: bool = False
  tokenizer_cache_size: int = 500000
  num_logged_examples: int = 20
  progress_interval_secs: float = 10.0
  spm_model_file: str = None
  beam_runner: str = None
  beam_pipeline_options: str = ""
  num_output_shards: int = 1
  beam_group_size: int = 2000


@dataclasses.dataclass
class RunSummary:
  """What a run made.

  Attributes:
    num_documents: documents read (non-empty).
    num_instances: instances written.
    num_masked_tokens: masked positions over all instances.
    seconds: wall time of the run.
    cpu_seconds: CPU time of the run (user + system), its worker processes
      included.
    output_files: the files written, final names.
  """
  num_documents: int = 0
  num_instances: int = 0
  num_masked_tokens: int = 0
  seconds: float = 0.0
  cpu_seconds: float = 0.0
  output_files: list = dataclasses.field(default_factory=list)


class Progress(object):
  """Counts documents and instances and logs a rate line now and then."""

  def __init__(self, interval_secs, prefix=""):
    """Starts the clock.

    Args:
      interval_secs: seconds between two progress lines.
      prefix: text put before each line (e.g. the worker).
    """
    self.interval_secs = interval_secs
    self.prefix = prefix
    self.documents = 0
    self.instances = 0
    self.start = time.time()
    self._last_log = self.start

  def add(self, documents=0, instances=0):
    """Counts `documents` and `instances` more; logs if the interval passed."""
    self.documents += documents
    self.instances += instances
    now = time.time()
    if now - self._last_log >= self.interval_secs:
      self._last_log = now
      elapsed = max(now - self.start, 1e-9)
      logging.info("%s%d documents (%.1f/s), %d instances (%.1f/s)",
                   self.prefix, self.documents, self.documents / elapsed,
                   self.instances, self.instances / elapsed)


def load_tokenizer(vocab_file, do_lower_case, spm_model_file=None):
  """Returns a `FullTokenizer`, checking the special tokens instances use.

  Args:
    vocab_file: the WordPiece vocabulary (optional with `spm_model_file`).
    do_lower_case: whether the tokenizer lower cases.
    spm_model_file: a SentencePiece model (ALBERT), or None.

  Returns:
    A `tokenization.FullTokenizer`.

  Raises:
    ValueError: if the vocabulary is missing, empty, or lacks one of
      `[CLS]`, `[SEP]`, `[MASK]`, `[UNK]` (a SentencePiece model: one of the
      first three; its unknown piece is its own).
  """
  if not vocab_file and not spm_model_file:
    raise ValueError("--vocab_file or --spm_model_file is required")
  tokenizer = tokenization.FullTokenizer(vocab_file=vocab_file,
                                         do_lower_case=do_lower_case,
                                         spm_model_file=spm_model_file)
  needed = (masking.CLS, masking.SEP, masking.MASK)
  if not spm_model_file:
    needed += (masking.UNK,)
  missing = [t for t in needed if t not in tokenizer.vocab]
  if missing:
    raise ValueError("%s %s lacks %s: pretraining instances need %s" % (
        "SentencePiece model" if spm_model_file else "vocab file",
        spm_model_file or vocab_file, ", ".join(missing), ", ".join(needed)))
  return tokenizer


def check_options(options):
  """Checks the flags before any work; warns about a too small prediction cap.

  Raises:
    ValueError: naming the flag and the expected range.
  """
  inst = options.instance
  min_length = inst.sentence_task.num_special_tokens() + 2
  if inst.max_seq_length < min_length:
    raise ValueError("--max_seq_length=%d is too small: %s instances need at "
                     "least %d" % (inst.max_seq_length, inst.sentence_task.name,
                                   min_length))
  if inst.max_predictions_per_seq < 1:
    raise ValueError("--max_predictions_per_seq=%d: expected at least 1" %
                     inst.max_predictions_per_seq)
  if not 0.0 < inst.masked_lm_prob <= 1.0:
    raise ValueError("--masked_lm_prob=%g: expected a value in (0, 1]" %
                     inst.masked_lm_prob)
  if not 0.0 <= inst.short_seq_prob <= 1.0:
    raise ValueError("--short_seq_prob=%g: expected a value in [0, 1]" %
                     inst.short_seq_prob)
  if options.dupe_factor < 1:
    raise ValueError("--dupe_factor=%d: expected at least 1" %
                     options.dupe_factor)
  if options.tokenizer_cache_size < 0:
    raise ValueError("--tokenizer_cache_size=%d: expected 0 (no cache) or "
                     "more" % options.tokenizer_cache_size)
  if options.num_workers < 1:
    raise ValueError("--num_workers=%d: expected at least 1" %
                     options.num_workers)
  if options.beam_runner and options.num_workers != 1:
    raise ValueError("--num_workers=%d contradicts --beam_runner=%s: the Beam "
                     "runner's own options set its workers" %
                     (options.num_workers, options.beam_runner))
  if options.num_output_shards < 1:
    raise ValueError("--num_output_shards=%d: expected at least 1" %
                     options.num_output_shards)
  if options.beam_group_size < 2:
    raise ValueError("--beam_group_size=%d: expected at least 2 (random next "
                     "sentences come from another document of the group)" %
                     options.beam_group_size)
  if not options.output_file or not all(options.output_file.split(",")):
    raise ValueError("--output_file=%r: expected a comma-separated list of "
                     "files" % options.output_file)
  full = int(round(inst.max_seq_length * inst.masked_lm_prob))
  if inst.max_predictions_per_seq < full:
    logging.warning(
        "--max_predictions_per_seq=%d is smaller than --masked_lm_prob * "
        "--max_seq_length = %d: full-length instances get only %d masked "
        "positions", inst.max_predictions_per_seq, full,
        inst.max_predictions_per_seq)


# Instances encoded at once (`PretrainingRecordEncoder.encode_instances`),
# and made at once in the parallel mode (`InstanceBatcher.make_batch`).
ENCODE_BATCH_SIZE = 2048


def _log_example(tokens, record):
  """Logs one instance as the original does: tokens, then every feature."""
  logging.info("*** Example ***")
  logging.info("tokens: %s", " ".join(
      tokenization.printable_text(x) for x in tokens))
  features = tf.train.Example.FromString(record).features.feature
  for name in (record_format.PRETRAINING_FEATURE_NAMES +
               record_format.SPAN_BOUNDARY_FEATURE_NAMES):
    if name in features:
      logging.info("%s: %s", name, " ".join(
          str(x) for x in record_format.feature_values(features[name])))


def _write_records(records, tokens_of, num_masked_tokens, writer, options,
                   summary, log_examples):
  """Writes records, counting them into `summary`.

  Args:
    records: list of serialized pretraining examples.
    tokens_of: function from an index of `records` to its tokens (strings),
      for the logged examples.
    num_masked_tokens: the masked positions of the records, in all.
    writer: a `record_writers.RoundRobinRecordWriter`.
    options: `RunOptions`.
    summary: `RunSummary` to count into.
    log_examples: whether this stream logs its first instances.
  """
  num_logged = (options.num_logged_examples - summary.num_instances
                if log_examples else 0)
  for index, record in enumerate(records):
    writer.write(record)
    if index < num_logged:
      _log_example(tokens_of(index), record)
  summary.num_instances += len(records)
  summary.num_masked_tokens += int(num_masked_tokens)


def _write_instances(instances, writer, encoder, options, summary,
                     log_examples):
  """Writes `TrainingInstance`s (see `_write_records`), in batches.

  Args:
    instances: list of `TrainingInstance`s.
    writer: a `record_writers.RoundRobinRecordWriter`.
    encoder: a `record_encoder.PretrainingRecordEncoder`.
    options: `RunOptions`.
    summary: `RunSummary` to count into.
    log_examples: whether this stream logs its first instances.
  """
  for start in range(0, len(instances), ENCODE_BATCH_SIZE):
    batch = instances[start:start + ENCODE_BATCH_SIZE]
    _write_records(encoder.encode_instances(batch),
                   lambda index, batch=batch: batch[index].tokens,
                   sum(len(i.masked_lm_positions) for i in batch), writer,
                   options, summary, log_examples)


def make_record_encoder(tokenizer, options):
  """Returns the `record_encoder.PretrainingRecordEncoder` of a run.

  Its `masked_lm_*` width is max_predictions_per_seq times the masking's
  `predictions_multiplier` (2 with ALBERT's permutation, as its writer).
  """
  return record_encoder.PretrainingRecordEncoder(
      tokenizer.vocab, options.instance.max_seq_length,
      options.instance.max_predictions_per_seq *
      options.instance.masking.predictions_multiplier)


def blank_line_rule(options):
  """The `read_documents` blank-line rule of the run's tokenization."""
  if options.spm_model_file:
    return documents_lib.is_blank_after_preprocessing
  return None


def no_instance_error(input_files):
  """Returns the error of a run that made no instance from `input_files`."""
  return ValueError(
      "no document long enough to make an instance in %s: every line is "
      "blank or has no token" % ", ".join(input_files))


def _run_faithful(options, input_files, tokenizer):
  """The original single stream: all documents in memory, one rng."""
  summary = RunSummary()
  progress = Progress(options.progress_interval_secs)
  documents = documents_lib.read_documents(
      input_files, documents_lib.make_line_tokenizer(tokenizer, options),
      progress=progress, is_blank=blank_line_rule(options))
  summary.num_documents = len(documents)
  if not documents:
    raise no_instance_error(input_files)
  rng = randomness.InstanceRandom(options.random_seed)
  options.instance.masking.start(options.random_seed)
  instances = instances_lib.create_training_instances(
      documents, options.instance, options.dupe_factor,
      list(tokenizer.vocab.keys()), rng, progress)
  output_files = options.output_file.split(",")
  logging.info("*** Writing to output files ***")
  for output_file in output_files:
    logging.info("  %s", output_file)
  with record_writers.RoundRobinRecordWriter(output_files) as writer:
    _write_instances(instances, writer,
                     make_record_encoder(tokenizer, options), options,
                     summary, log_examples=True)
  summary.output_files = output_files
  return summary


def worker_output_files(output_file, worker_index, num_workers):
  """Returns the shards one worker writes: `<name>-<i>-of-<n>` per output."""
  return ["%s-%05d-of-%05d" % (name, worker_index, num_workers)
          for name in output_file.split(",")]


def plan_worker_units(input_files, num_workers):
  """Deals the input among workers as (file, part, num_parts) units.

  With at least as many files as workers, each file is one unit; otherwise
  each file is cut into `ceil(num_workers / num_files)` parts of documents.
  Units go round-robin to the workers.

  Returns:
    A list, per worker, of lists of (file, part, num_parts).
  """
  num_parts = -(-num_workers // len(input_files))
  units = [(path, part, num_parts) for path in input_files
           for part in range(num_parts)]
  return [units[w::num_workers] for w in range(num_workers)]


def _run_worker(options, tokenizer, worker_index, units, tmp_token):
  """One process of the parallel mode; returns its `RunSummary`.

  Its shards stay under their temporary names: the parent renames them when
  every worker succeeded.
  """
  with without_cyclic_gc():  # A spawned worker starts with it on.
    return _make_worker_records(options, tokenizer, worker_index, units,
                                tmp_token)


def _make_worker_records(options, tokenizer, worker_index, units, tmp_token):
  """The work of `_run_worker`."""
  logging.set_verbosity(logging.INFO)
  if options.fast_tokenizer:
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
  # Instances are made on ids (`InstanceBatcher`).
  tokenize_lines = documents_lib.make_line_tokenizer(tokenizer, options,
                                                     as_ids=True)
  # Not the original's stream anyway: the cheaper source, same distributions.
  rng = randomness.NumpyInstanceRandom("%d:%d" % (options.random_seed,
                                                   worker_index))
  options.instance.masking.start(
      random.Random("numpy:%d:%d" % (options.random_seed,
                                     worker_index)).getrandbits(32))
  batcher = batches.InstanceBatcher(options.instance, tokenizer.vocab)
  summary = RunSummary()
  progress = Progress(options.progress_interval_secs, "worker %d/%d: " %
                      (worker_index, options.num_workers))
  output_files = worker_output_files(options.output_file, worker_index,
                                     options.num_workers)
  writer = record_writers.RoundRobinRecordWriter(output_files, tmp_token)
  encoder = make_record_encoder(tokenizer, options)
  try:
    for path, part, num_parts in units:
      documents = documents_lib.read_documents(
          [path], tokenize_lines, part, num_parts, progress,
          is_blank=blank_line_rule(options))
      summary.num_documents += len(documents)
      rng.shuffle(documents)
      for _ in range(options.dupe_factor):
        segments = []
        for document_index in range(len(documents)):
          num_segments = len(segments)
          segments.extend(instances_lib.instance_segments(
              documents, document_index, options.instance, rng))
          progress.add(instances=len(segments) - num_segments)
        rng.shuffle(segments)
        for start in range(0, len(segments), ENCODE_BATCH_SIZE):
          batch = batcher.make_batch(
              segments[start:start + ENCODE_BATCH_SIZE], rng)
          _write_records(
              encoder.encode_batch(batch),
              lambda index, batch=batch: [
                  batcher.words[i]
                  for i in batch.input_ids[index, :batch.num_tokens[index]]],
              batch.num_predictions.sum(), writer, options, summary,
              log_examples=worker_index == 0)
    writer.close(rename=False)
  except BaseException:
    writer.abort()
    raise
  summary.output_files = output_files
  return summary


def _start_method():
  """Returns "fork" when it is safe, else "spawn".

  Forked workers start at once with TensorFlow already imported, but forking
  a process whose TensorFlow runtime is running (its thread pools exist) can
  hang the children; the script's parent process never runs a TF op before
  the workers start, a library caller may have. Spawned workers start clean
  and import TensorFlow themselves (seconds each).
  """
  if "fork" not in multiprocessing.get_all_start_methods():
    return "spawn"
  from tensorflow.python.eager import context  # pylint: disable=g-import-not-at-top
  ctx = context.context_safe()
  # The context object may exist (absl's app.run makes one) uninitialized.
  return "fork" if ctx is None or not getattr(ctx, "_initialized", True) else (
      "spawn")


def _run_parallel(options, input_files, tokenizer):
  """N processes over (file, part) units, each with its own seeded rng."""
  tmp_token = os.getpid()
  plan = plan_worker_units(input_files, options.num_workers)
  all_outputs = [f for w in range(options.num_workers)
                 for f in worker_output_files(options.output_file, w,
                                              options.num_workers)]
  logging.info("*** Writing to output files ***")
  for output_file in all_outputs:
    logging.info("  %s", output_file)
  if options.fast_tokenizer:
    # Loaded once here (no TensorFlow op runs): forked workers inherit
    # tensorflow_text's ops and the Unicode tables.
    from bert_tf.text import unicode_tables  # pylint: disable=g-import-not-at-top
    unicode_tables.get_tables(options.do_lower_case)
  context = multiprocessing.get_context(_start_method())
  try:
    with futures.ProcessPoolExecutor(options.num_workers,
                                     mp_context=context) as pool:
      results = list(pool.map(
          _run_worker, [options] * options.num_workers,
          [tokenizer] * options.num_workers, range(options.num_workers), plan,
          [tmp_token] * options.num_workers))
  except BaseException:
    record_writers.discard_all(all_outputs, tmp_token)
    raise
  summary = RunSummary(output_files=all_outputs)
  for result in results:
    summary.num_documents += result.num_documents
    summary.num_instances += result.num_instances
    summary.num_masked_tokens += result.num_masked_tokens
  if not summary.num_instances:
    record_writers.discard_all(all_outputs, tmp_token)
    raise no_instance_error(input_files)
  record_writers.commit_all(all_outputs, tmp_token)
  return summary


@contextlib.contextmanager
def without_cyclic_gc():
  """Pauses Python's cyclic garbage collector (then restores its state).

  Documents, segments and instances are millions of small lists without
  reference cycles, freed by reference counting; each collection of the
  older generations would walk all of them (a third of the time of making
  instances on wikitext2).
  """
  enabled = gc.isenabled()
  gc.disable()
  try:
    yield
  finally:
    if enabled:
      gc.enable()


def _cpu_seconds():
  """Returns the CPU seconds of this process and of its waited-for children."""
  own, children = (resource.getrusage(who) for who in (
      resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
  return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def create_pretraining_data(options):
  """Reads text, makes instances and writes the pretraining TFRecords.

  With `num_workers == 1` this is the original program, record for record:
  every document is held in memory, one `random.Random(random_seed)` drives
  all choices, all instances of all passes are shuffled together and written
  round-robin to the output files.

  With `num_workers = N > 1` it streams: N processes share the input as
  (file, part) units (`plan_worker_units`), worker i seeds its own
  `randomness.NumpyInstanceRandom("<random_seed>:<i>")` (the same
  distributions from cheaper draws) and writes `<output>-<i>-of-<N>` for
  each output file. Each unit is read, shuffled and made into instances one
  pass at a time, so memory holds one unit's documents and one pass of its
  instances, not the corpus times `dupe_factor`. Random next sentences come
  from the same unit, documents do not run across files, instances are
  shuffled within a pass of a unit. The stream is reproducible for a given
  seed and N but differs from the original's.

  With `beam_runner` the work is an Apache Beam pipeline
  (`beam_pipeline.run_beam`): records reproducible for a given seed whatever
  the runner and its workers, random next sentences drawn from seeded groups
  of `beam_group_size` documents, `num_output_shards` shards per output file.

  Args:
    options: `RunOptions`.

  Returns:
    A `RunSummary`.

  Raises:
    ValueError: bad flags, inputs or vocabulary (the message names them).
  """
  start, start_cpu = time.time(), _cpu_seconds()
  check_options(options)
  tokenizer = load_tokenizer(options.vocab_file, options.do_lower_case,
                            options.spm_model_file)
  input_files = documents_lib.resolve_input_files(options.input_file)
  logging.info("*** Reading from input files ***")
  for input_file in input_files:
    logging.info("  %s", input_file)
  with without_cyclic_gc():
    if options.beam_runner:
      # Imported when asked for: apache_beam is the `beam` extra.
      from bert_tf.data.pretraining import beam_pipeline  # pylint: disable=g-import-not-at-top
      summary = beam_pipeline.run_beam(options, input_files)
    elif options.num_workers == 1:
      summary = _run_faithful(options, input_files, tokenizer)
    else:
      summary = _run_parallel(options, input_files, tokenizer)
  summary.seconds = time.time() - start
  summary.cpu_seconds = _cpu_seconds() - start_cpu
  logging.info("Wrote %d total instances", summary.num_instances)
  logging.info(
      "Summary: %d documents, %d instances, %d masked tokens in %.2f s "
      "(%.1f instances/s, %.2f CPU s); output files: %s",
      summary.num_documents, summary.num_instances, summary.num_masked_tokens,
      summary.seconds, summary.num_instances / max(summary.seconds, 1e-9),
      summary.cpu_seconds, ", ".join(summary.output_files))
  return summary
