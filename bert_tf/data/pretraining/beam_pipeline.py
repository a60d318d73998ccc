"""create_pretraining_data as an Apache Beam pipeline (`--beam_runner`).

Instances made by the code of the faithful mode
(`instances.create_instances_from_document` with the run's `MaskingStrategy`
and `SentenceTask`, drawing through `randomness.InstanceRandom`) and encoded
by its `record_encoder`, in a pipeline that runs locally
(`DirectRunner`, `PrismRunner`) or on a cluster (`DataflowRunner`,
`FlinkRunner`, `SparkRunner`) with memory per worker bounded by a group of
documents and a shard, not by the corpus:

  1. Read: each input file is cut into parts of documents (document number
     modulo the number of parts, `documents.read_documents`; a part per
     `_PART_BYTES` of file, at most `_MAX_PARTS_PER_FILE`), and each part is
     read and tokenized by one worker, whose tokenizer is set up once
     (`DoFn.setup`). A document is never split; it is named by its file and
     its number in the file.
  2. Group: each document goes to one of ceil(documents / `beam_group_size`)
     groups by a seeded hash of its name (`GroupByKey`).
  3. Instances: in a group, ordered by name, each document makes its
     instances for each dupe pass with its own `InstanceRandom` seeded from
     `--random_seed`, its name and the pass; random next sentences (and
     SOP's one-sentence chunks) draw the other document from its group.
  4. Shuffle and write: each record gets a seeded hash key (seed, name, pass,
     index); the key picks its shard and records are written in key order
     within their shard, `<output_file>-SSSSS-of-NNNNN` (Beam's default shard
     names) for each output file, under temporary names committed when the
     pipeline succeeded.

Every draw depends only on the seed, the document's name, the pass and the
group's members, and the order of the records only on their keys: the
records, file by file, do not depend on the runner, the number of workers or
the bundles, and two runs are identical.

Deviations from the original (and the faithful mode), with the same
distributions otherwise (tests/test_beam_pipeline.py compares the
statistics):

* the random other document of a random next segment comes from the
  document's group of about `beam_group_size` documents, not from the whole
  corpus (the original needs every document in one process's memory);
* a document does not run on into the next file when a file does not end
  with a blank line (as the `--num_workers` mode);
* each document has its own random stream, so the records are not the
  original's (nor the `--num_workers` mode's).

Memory: a worker's work items are one part of a file, one group's documents
and instances, and one shard's records (sorted before writing): choose
`--num_output_shards` so that a shard (about 1 KB a record at
`max_seq_length` 128) fits a worker. That bounds a worker on runners that
stream bundles (Dataflow, Flink, Spark); the local `DirectRunner` keeps the
shuffled collections in its own process and hands a worker its share of a
stage at once, so its memory grows with the corpus (bench/README.md).
"""

import hashlib
import math
import os
import shlex
import uuid

from absl import logging
import apache_beam as beam
from apache_beam.metrics import metric
from apache_beam.options import pipeline_options
import tensorflow as tf

from bert_tf.data import record_writers
from bert_tf.data.pretraining import documents as documents_lib
from bert_tf.data.pretraining import instances as instances_lib
from bert_tf.data.pretraining import pipeline as pipeline_lib
from bert_tf.data.pretraining import randomness

# A file is read in parts of about this many bytes, one worker each; every
# part scans the file and tokenizes its own documents.
_PART_BYTES = 64 << 20
_MAX_PARTS_PER_FILE = 16

# The namespace of the pipeline's counters (`RunSummary`).
_METRICS_NAMESPACE = "bert_tf.create_pretraining_data"


def hash64(*parts):
  """Returns a 64-bit int hash of `parts`, the same in every process.

  Python's `hash` of a str is salted per process; this one is not.

  Args:
    *parts: values whose `repr` is stable (ints, strs, tuples of them).

  Returns:
    An int in [0, 2**64).
  """
  digest = hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=8)
  return int.from_bytes(digest.digest(), "big")


def plan_read_units(input_files):
  """Cuts the input into (file, part, num_parts) units, by file size.

  Args:
    input_files: list of paths.

  Returns:
    A list of (path, part, num_parts): the documents of `path` whose number
    % num_parts is part (`documents.read_documents`).
  """
  units = []
  for path in input_files:
    size = tf.io.gfile.stat(path).length
    num_parts = min(max(1, math.ceil(size / _PART_BYTES)),
                    _MAX_PARTS_PER_FILE)
    units.extend((path, part, num_parts) for part in range(num_parts))
  return units


def shard_paths(output_file, num_output_shards):
  """Returns every shard of a run, output file after output file.

  Args:
    output_file: the comma-separated `--output_file`.
    num_output_shards: shards per output file.

  Returns:
    A list of `<output>-SSSSS-of-NNNNN` paths (the default
    `shard_name_template` of Beam's file sinks, `WriteToTFRecord`);
    shard s of the run is item s.
  """
  return [pipeline_lib.worker_output_files(name, shard, num_output_shards)[0]
          for name in output_file.split(",")
          for shard in range(num_output_shards)]


def document_seed(random_seed, name, dupe):
  """Returns the seed of one document's pass (a str for `InstanceRandom`).

  Args:
    random_seed: `--random_seed`.
    name: the document's (path, number).
    dupe: the pass, 0 to `dupe_factor - 1`.
  """
  path, number = name
  return "%d:%s:%d:%d" % (random_seed, path, number, dupe)


class _ReadDocuments(beam.DoFn):
  """Reads and tokenizes one (file, part, num_parts) unit.

  Yields (name, document): name = (path, number in the file), document a
  list of sentences (lists of token strings).
  """

  def __init__(self, options):
    """Keeps the `RunOptions`; the tokenizer is loaded in `setup`."""
    super().__init__()
    self._options = options
    self._documents = metric.Metrics.counter(_METRICS_NAMESPACE, "documents")

  def setup(self):
    """Loads the tokenizer once per worker."""
    options = self._options
    tokenizer = pipeline_lib.load_tokenizer(
        options.vocab_file, options.do_lower_case, options.spm_model_file)
    self._tokenize_lines = documents_lib.make_line_tokenizer(tokenizer,
                                                             options)

  def process(self, unit):
    """Yields the (name, document)s of `unit`, a (path, part, num_parts)."""
    path, part, num_parts = unit
    numbered = documents_lib.read_documents(
        [path], self._tokenize_lines, part, num_parts,
        is_blank=pipeline_lib.blank_line_rule(self._options), numbered=True)
    self._documents.inc(len(numbered))
    for number, document in numbered:
      yield (path, number), document


def _key_by_group(named_document, random_seed, group_size, num_documents):
  """Keys a (name, document) by its group, a seeded hash of its name.

  Args:
    named_document: (name, document).
    random_seed: `--random_seed`.
    group_size: documents per group, on average.
    num_documents: documents of the corpus.

  Returns:
    (group, (name, document)).
  """
  num_groups = max(1, math.ceil(num_documents / group_size))
  return (hash64("group", random_seed, named_document[0]) % num_groups,
          named_document)


class _MakeInstances(beam.DoFn):
  """Makes the records of a group of documents, every pass of each.

  Yields (key, record): the record's seeded shuffle key (a 64-bit int) and
  the serialized example.
  """

  def __init__(self, options):
    """Keeps the `RunOptions`; the vocabulary is loaded in `setup`."""
    super().__init__()
    self._options = options
    self._instances = metric.Metrics.counter(_METRICS_NAMESPACE, "instances")
    self._masked = metric.Metrics.counter(_METRICS_NAMESPACE,
                                          "masked_tokens")

  def setup(self):
    """Loads the vocabulary and the record encoder once per worker."""
    options = self._options
    tokenizer = pipeline_lib.load_tokenizer(
        options.vocab_file, options.do_lower_case, options.spm_model_file)
    self._vocab_words = list(tokenizer.vocab.keys())
    self._encoder = pipeline_lib.make_record_encoder(tokenizer, options)

  def process(self, group):
    """Yields the (key, record)s of a (group, [(name, document)])."""
    options = self._options
    named = sorted(group[1], key=lambda named_document: named_document[0])
    documents = [document for _, document in named]
    keys, made = [], []  # Encoded in batches: a document makes a few.
    with pipeline_lib.without_cyclic_gc():
      for dupe in range(options.dupe_factor):
        for index, (name, _) in enumerate(named):
          seed = document_seed(options.random_seed, name, dupe)
          options.instance.masking.start(hash64("masking", seed) % (1 << 32))
          instances = instances_lib.create_instances_from_document(
              documents, index, options.instance, self._vocab_words,
              randomness.InstanceRandom(seed))
          keys.extend(hash64("order", seed, number)
                      for number in range(len(instances)))
          made.extend(instances)
          if len(made) >= pipeline_lib.ENCODE_BATCH_SIZE:
            yield from self._encode(keys, made)
      yield from self._encode(keys, made)

  def _encode(self, keys, made):
    """Yields (key, record) of each instance and empties both lists.

    Args:
      keys: the instances' shuffle keys.
      made: `TrainingInstance`s.
    """
    if made:
      self._instances.inc(len(made))
      self._masked.inc(sum(len(i.masked_lm_positions) for i in made))
      yield from zip(keys, self._encoder.encode_instances(made))
    keys.clear()
    made.clear()


def _key_by_shard(keyed_record, num_shards):
  """Returns (shard, (key, record)): the key's shard."""
  return keyed_record[0] % num_shards, keyed_record


class _WriteShard(beam.DoFn):
  """Writes one shard's records in key order, under its temporary name."""

  def __init__(self, paths, token):
    """Keeps the shards' final paths and the temporary names' token.

    Args:
      paths: the run's shard paths (`shard_paths`).
      token: the temporary names' token (`file_io.temporary_path`).
    """
    super().__init__()
    self._paths = paths
    self._token = token

  def process(self, shard_records):
    """Writes a (shard, [(key, record) or None]); yields the shard's path.

    The None placeholders make every shard a key, so an empty shard is
    written too.
    """
    shard, keyed_records = shard_records
    records = sorted(r for r in keyed_records if r is not None)
    path = self._paths[shard]
    writer = record_writers.RoundRobinRecordWriter([path], self._token)
    try:
      for _, record in records:
        writer.write(record)
      writer.close(rename=False)
    except BaseException:
      writer.abort()
      raise
    yield path


def build_pipeline(root, options, input_files, paths, token):
  """Adds the create_pretraining_data transforms to a Beam pipeline.

  Args:
    root: the `beam.Pipeline`.
    options: `RunOptions`.
    input_files: the resolved input files.
    paths: the shard paths (`shard_paths`).
    token: the temporary names' token.

  Returns:
    The PCollection of the written shards' paths.
  """
  documents = (
      root
      | "ReadUnits" >> beam.Create(plan_read_units(input_files))
      | "SpreadUnits" >> beam.Reshuffle()
      | "ReadDocuments" >> beam.ParDo(_ReadDocuments(options)))
  num_documents = documents | "CountDocuments" >> (
      beam.combiners.Count.Globally())
  records = (
      documents
      | "KeyByGroup" >> beam.Map(_key_by_group, options.random_seed,
                                 options.beam_group_size,
                                 beam.pvalue.AsSingleton(num_documents))
      | "GroupDocuments" >> beam.GroupByKey()
      | "MakeInstances" >> beam.ParDo(_MakeInstances(options))
      | "KeyByShard" >> beam.Map(_key_by_shard, len(paths)))
  every_shard = root | "EveryShard" >> beam.Create(
      [(shard, None) for shard in range(len(paths))])
  return ((records, every_shard)
          | "WithEveryShard" >> beam.Flatten()
          | "GroupShards" >> beam.GroupByKey()
          | "WriteShards" >> beam.ParDo(_WriteShard(paths, token)))


def _counter(result, name):
  """Returns the value of one of the pipeline's counters (0 if unseen)."""
  counters = result.metrics().query(
      metric.MetricsFilter().with_namespace(_METRICS_NAMESPACE).with_name(
          name))["counters"]
  return sum((c.committed if c.committed is not None else c.attempted) or 0
             for c in counters)


def beam_options(runner, flags):
  """Returns the `PipelineOptions` of `--beam_runner` and its flags.

  Args:
    runner: the runner's name.
    flags: `--beam_pipeline_options`, Beam flags in one string.

  Raises:
    ValueError: if the flags name a runner too.
  """
  argv = shlex.split(flags or "")
  if any(arg == "--runner" or arg.startswith("--runner=") for arg in argv):
    raise ValueError("--beam_pipeline_options=%r names a runner: give it as "
                     "--beam_runner" % flags)
  return pipeline_options.PipelineOptions(argv + ["--runner=%s" % runner])


def run_beam(options, input_files):
  """Runs the pipeline on `options.beam_runner` and waits for it.

  The output directories are made if missing; the shards are written under
  temporary names and renamed when the pipeline succeeded; on a failure (or no instance at all) they are deleted.

  Args:
    options: `RunOptions`.
    input_files: the resolved input files.

  Returns:
    A `RunSummary` (the counts from the pipeline's metrics).

  Raises:
    ValueError: if no document makes an instance.
  """
  paths = shard_paths(options.output_file, options.num_output_shards)
  for directory in sorted({os.path.dirname(path) for path in paths} - {""}):
    tf.io.gfile.makedirs(directory)
  token = "beam-%s" % uuid.uuid4().hex[:12]
  logging.info("*** Running on Beam's %s, writing %d shards: %s ... ***",
               options.beam_runner, len(paths), paths[0])
  try:
    root = beam.Pipeline(options=beam_options(options.beam_runner,
                                              options.beam_pipeline_options))
    build_pipeline(root, options, input_files, paths, token)
    result = root.run()
    result.wait_until_finish()
  except BaseException:
    record_writers.discard_all(paths, token)
    raise
  summary = pipeline_lib.RunSummary(
      num_documents=_counter(result, "documents"),
      num_instances=_counter(result, "instances"),
      num_masked_tokens=_counter(result, "masked_tokens"),
      output_files=paths)
  if not summary.num_instances:
    record_writers.discard_all(paths, token)
    raise pipeline_lib.no_instance_error(input_files)
  record_writers.commit_all(paths, token)
  return summary
