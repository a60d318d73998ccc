"""Speed and memory of create_pretraining_data: original stream vs fast modes.

Runs `create_pretraining_data.py` as a fresh process per run (as from a shell)
on a real corpus with a real vocabulary, each side `--repeats` times in turn,
and reports medians:

  original      --num_workers=1 --tokenizer_cache_size=0: the original
                program's work (line-by-line FullTokenizer, one process)
  faithful      --num_workers=1: the same records, each distinct word
                tokenized once
  fast_parallel --fast_tokenizer --num_workers=N: in-graph tokenizer, N
                streaming processes (a different, reproducible stream)
  parallel      --num_workers=N: FullTokenizer with the word cache, N processes
  beam          --beam_runner=DirectRunner --beam_pipeline_options=
                "--direct_num_workers=N --direct_running_mode=multi_processing"
                --num_output_shards=N (or --num_output_shards): the Beam
                pipeline on N local worker processes (its own reproducible
                records)

For each side: instances, work seconds (the script's own summary: from flag
checks to the last file renamed, without Python and TensorFlow start-up),
instances per work second, the CPU seconds of that work (user + system,
workers included; on a busy machine the least noisy number), end-to-end wall
seconds of the process, CPU seconds of the process (interpreter and TensorFlow
start-up included), the peak resident memory of its
largest process (`os.wait4` rusage, which covers the process and the workers
it waited for), the peak of the summed resident memory of the process and
all its descendants ("tree MB") and the peak of the largest descendant alone
("worker MB": a `--num_workers` worker or a Beam SDK worker), both sampled
every 0.1 s (Beam's DirectRunner starts worker processes it does not wait
for). Ratios are against `--baseline` (`original`). The machine's other load
moves wall and work seconds; CPU seconds move less.

Usage:
  PYTHONPATH=. python bench/create_pretraining_data_speed.py \
      [--dupe_factor=1] [--repeats=3] [--num_workers=2] [--corpus_copies=1] \
      [--sides=faithful,parallel,beam --baseline=faithful] \
      [--num_output_shards=0]
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from absl import app
from absl import flags
import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(os.path.dirname(ROOT), "shared", "fixtures")

FLAGS = flags.FLAGS
flags.DEFINE_string("corpus", os.path.join(FIXTURES, "corpora",
                                           "wikitext2_valid.tokens"),
                    "Input text: a file or a comma list of files, "
                    "concatenated (documents kept apart) into one input.")
flags.DEFINE_string("vocab_file", os.path.join(FIXTURES, "vocab",
                                               "uncased_vocab.txt"),
                    "WordPiece vocabulary (uncased).")
flags.DEFINE_integer("max_seq_length", 128, "--max_seq_length of the runs.")
flags.DEFINE_integer("dupe_factor", 1, "--dupe_factor of the runs.")
flags.DEFINE_integer("num_workers", 2, "--num_workers of the parallel sides.")
flags.DEFINE_integer("repeats", 3, "Runs per side (medians are reported).")
flags.DEFINE_integer("corpus_copies", 1,
                     "Concatenate the corpus this many times (a larger "
                     "input with the same words).")
flags.DEFINE_string("sides",
                    "original,faithful,fast_parallel,parallel,beam",
                    "Comma list of sides to run, in this order each repeat.")
flags.DEFINE_integer("num_output_shards", 0,
                     "--num_output_shards of the beam side (0: "
                     "--num_workers); a Beam worker sorts one shard.")
flags.DEFINE_string("baseline", "original",
                    "The side the ratios are against.")
flags.DEFINE_string("output_json", None, "Also write the results here.")

_SUMMARY = re.compile(r"Summary: (\d+) documents, (\d+) instances, (\d+) "
                      r"masked tokens in ([\d.]+) s \([\d.]+ instances/s, "
                      r"([\d.]+) CPU s\)")


def side_flags(side, num_workers, num_output_shards):
  """Returns the extra flags of one side."""
  return {
      "original": ["--num_workers=1", "--tokenizer_cache_size=0"],
      "faithful": ["--num_workers=1"],
      "fast_parallel": ["--fast_tokenizer", "--num_workers=%d" % num_workers],
      "parallel": ["--num_workers=%d" % num_workers],
      "beam": ["--beam_runner=DirectRunner",
               "--beam_pipeline_options=--direct_num_workers=%d "
               "--direct_running_mode=multi_processing" % num_workers,
               "--num_output_shards=%d" % num_output_shards],
  }[side]


class TreeMemorySampler(object):
  """Samples the resident memory of a process and its descendants.

  Attributes:
    peak_bytes: the peak of the sum over the tree.
    worker_peak_bytes: the peak of the largest descendant.
  """

  def __init__(self, pid, interval_secs=0.1):
    """Starts sampling `pid`'s tree in a thread.

    Args:
      pid: the root process.
      interval_secs: seconds between two samples.
    """
    self.peak_bytes = 0
    self.worker_peak_bytes = 0
    self._root = psutil.Process(pid)
    self._interval_secs = interval_secs
    self._done = threading.Event()
    self._thread = threading.Thread(target=self._sample, daemon=True)
    self._thread.start()

  def _sample(self):
    while not self._done.is_set():
      sizes = []
      try:
        for process in [self._root] + self._root.children(recursive=True):
          try:
            sizes.append(process.memory_info().rss)
          except psutil.Error:
            pass  # Ended between the listing and the reading.
      except psutil.Error:
        return  # The root ended.
      self.peak_bytes = max(self.peak_bytes, sum(sizes))
      self.worker_peak_bytes = max([self.worker_peak_bytes] + sizes[1:])
      self._done.wait(self._interval_secs)

  def stop(self):
    """Stops sampling; returns the tree's and the largest worker's peak, MB."""
    self._done.set()
    self._thread.join()
    return self.peak_bytes / (1 << 20), self.worker_peak_bytes / (1 << 20)


def run_once(side, corpus, out_dir):
  """Runs the script once; returns a dict of its measurements."""
  if os.path.isdir(out_dir):
    shutil.rmtree(out_dir)
  os.makedirs(out_dir)
  command = [
      sys.executable, os.path.join(ROOT, "create_pretraining_data.py"),
      "--input_file=" + corpus,
      "--output_file=" + os.path.join(out_dir, "out.tfrecord"),
      "--vocab_file=" + FLAGS.vocab_file, "--do_lower_case=True",
      "--max_seq_length=%d" % FLAGS.max_seq_length,
      "--dupe_factor=%d" % FLAGS.dupe_factor,
  ] + side_flags(side, FLAGS.num_workers,
                 FLAGS.num_output_shards or FLAGS.num_workers)
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
  start = time.time()
  process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
  sampler = TreeMemorySampler(process.pid)
  output = process.stdout.read()
  tree_peak_mb, worker_peak_mb = sampler.stop()
  _, status, usage = os.wait4(process.pid, 0)
  wall = time.time() - start
  process.returncode = os.waitstatus_to_exitcode(status)
  match = _SUMMARY.search(output)
  if process.returncode or not match:
    raise RuntimeError("%s failed (exit %d):\n%s" % (
        " ".join(command), process.returncode, output[-3000:]))
  documents, instances, masked, seconds, cpu_seconds = match.groups()
  return {"documents": int(documents), "instances": int(instances),
          "masked_tokens": int(masked), "work_seconds": float(seconds),
          "work_cpu_seconds": float(cpu_seconds),
          "wall_seconds": wall, "cpu_seconds": usage.ru_utime + usage.ru_stime,
          "peak_rss_mb": usage.ru_maxrss / 1024.0,
          "tree_peak_mb": tree_peak_mb, "worker_peak_mb": worker_peak_mb}


def main(_):
  sides = FLAGS.sides.split(",")
  load_before = os.getloadavg()[0]
  with tempfile.TemporaryDirectory() as tmp:
    corpus = FLAGS.corpus
    if FLAGS.corpus_copies > 1 or "," in corpus:
      corpus = os.path.join(tmp, "corpus.txt")
      texts = []
      for path in FLAGS.corpus.split(","):
        with open(path, encoding="utf-8") as f:
          texts.append(f.read())
      with open(corpus, "w", encoding="utf-8") as f:
        for _ in range(FLAGS.corpus_copies):
          for text in texts:
            f.write(text + "\n\n")
    runs = {side: [] for side in sides}
    for _ in range(FLAGS.repeats):
      for side in sides:
        runs[side].append(run_once(side, corpus, os.path.join(tmp, side)))

  results = {}
  for side in sides:
    median = {key: statistics.median(run[key] for run in runs[side])
              for key in runs[side][0]}
    median["instances_per_work_second"] = (
        median["instances"] / median["work_seconds"])
    results[side] = median
  base = results.get(FLAGS.baseline)
  print("corpus %s x%d, max_seq_length %d, dupe_factor %d, %d repeats "
        "(medians)" % (",".join(os.path.basename(path) for path in
                                FLAGS.corpus.split(",")), FLAGS.corpus_copies,
                       FLAGS.max_seq_length, FLAGS.dupe_factor,
                       FLAGS.repeats))
  print("load average before: %.2f, after: %.2f" % (load_before,
                                                   os.getloadavg()[0]))
  print("%-14s %9s %8s %10s %10s %8s %8s %8s %8s %9s %9s %9s" % (
      "side", "instances", "work s", "inst/s", "work cpu s", "wall s",
      "cpu s", "peak MB", "tree MB", "worker MB", "x work", "x wall"))
  for side, r in results.items():
    work_ratio = base["work_seconds"] / r["work_seconds"] if base else 0.0
    wall_ratio = base["wall_seconds"] / r["wall_seconds"] if base else 0.0
    r["speedup_work"], r["speedup_wall"] = work_ratio, wall_ratio
    print("%-14s %9d %8.2f %10.1f %10.2f %8.2f %8.2f %8.1f %8.1f %9.1f "
          "%8.2fx %8.2fx" % (
              side, r["instances"], r["work_seconds"],
              r["instances_per_work_second"], r["work_cpu_seconds"],
              r["wall_seconds"], r["cpu_seconds"], r["peak_rss_mb"],
              r["tree_peak_mb"], r["worker_peak_mb"], work_ratio,
              wall_ratio))
  if FLAGS.output_json:
    with open(FLAGS.output_json, "w") as f:
      json.dump({"flags": {k: FLAGS[k].value for k in (
          "corpus", "vocab_file", "max_seq_length", "dupe_factor",
          "num_workers", "repeats", "corpus_copies", "num_output_shards",
          "sides", "baseline")},
                 "runs": runs, "medians": results}, f, indent=2)


if __name__ == "__main__":
  app.run(main)
