"""What the experiments share: corpora, masked batches, a pretraining run.

The experiments pretrain tiny BERTs with the package itself:

- text: the fixture corpora (`CORPORA`), tokenized by
  `bert_tf.tokenization.FullTokenizer` with a short vocabulary
  (`short_vocabulary`: the released WordPiece vocabulary cut to the pieces a
  corpus uses most, plus every single-character piece it uses, so that the
  text still tokenizes without [UNK]);
- instances: the token stream cut into rows of [CLS] + tokens + [SEP]
  (`make_rows`, one segment, no next sentence prediction);
- masking: `bert_tf.data.pretraining_dataset.DynamicMasking` (15%, 80/10/10),
  drawn anew for every training row (`train_dataset_fn`) and once, with a fixed
  seed, for the validation rows (`masked_once`);
- model, losses and metrics: `BertPretrainer` without the NSP head,
  `bert_tf.tasks.pretraining.loss_fn` / `eval_fn`;
- training: `bert_tf.training.trainer.Trainer` with the original optimizer
  (`optimization.create_optimizer`: AdamWeightDecay, warmup then linear decay,
  clipping at 1.0), evaluated every so many steps (`pretrain`).

Tokenized corpora are cached as .npz files under `$BERT_TF_EXPERIMENT_CACHE`
(default /tmp/bert_tf_experiments); delete them to tokenize again.
"""

import collections
import dataclasses
import json
import os
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

from bert_tf import file_io
from bert_tf import tokenization
from bert_tf.data import pretraining_dataset
from bert_tf.modeling import BertConfig
from bert_tf.modeling import BertPretrainer
from bert_tf.tasks import pretraining
from bert_tf.training import optimization
from bert_tf.training import trainer as trainer_lib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIXTURES = os.path.join(os.path.dirname(ROOT), "shared", "fixtures")
CACHE = os.environ.get("BERT_TF_EXPERIMENT_CACHE",
                       "/tmp/bert_tf_experiments")
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


@dataclasses.dataclass(frozen=True)
class Corpus:
  """A fixture corpus and how to read it.

  Attributes:
    title: name in tables and plots.
    train_file: text file under fixtures/corpora, one paragraph or sentence a
      line.
    valid_file: the held-out file, or None to hold out the last
      `valid_fraction` of `train_file`'s tokens.
    vocab_file: the released vocabulary under fixtures/vocab it is cut from.
    do_lower_case: lower-case the text (uncased and Chinese vocabularies).
    skip_headings: drop WikiText's `= Title =` lines.
    valid_fraction: see `valid_file`.
  """
  title: str
  train_file: str
  valid_file: str
  vocab_file: str
  do_lower_case: bool = True
  skip_headings: bool = False
  valid_fraction: float = 0.1


CORPORA = {
    "wikitext2": Corpus("WikiText-2", "wikitext2_test.tokens",
                        "wikitext2_valid.tokens", "uncased_vocab.txt",
                        skip_headings=True),
    "clue": Corpus("CLUECorpusSmall (zh)", "clue_small_zh.txt", None,
                   "chinese_vocab.txt"),
    "enwik8": Corpus("enwik8", "enwik8_small.txt", None, "uncased_vocab.txt"),
    # WikiText-2's two files as two corpora of different articles, each
    # holding out its own last 10%.
    "wikitext2_test": Corpus("WikiText-2 test file", "wikitext2_test.tokens",
                             None, "uncased_vocab.txt", skip_headings=True),
    "wikitext2_valid": Corpus("WikiText-2 valid file",
                              "wikitext2_valid.tokens", None,
                              "uncased_vocab.txt", skip_headings=True),
}


def read_lines(path, skip_headings):
  """The non-blank lines of a text file (without WikiText headings).

  Args:
    path: text file.
    skip_headings: drop lines starting with "=" (WikiText's titles).

  Returns:
    list of str.

  Raises:
    ValueError: naming the file if it is missing or has no text.
  """
  if not os.path.exists(path):
    raise ValueError("Corpus file not found: %s" % path)
  with open(path, encoding="utf-8") as reader:
    lines = [line.strip() for line in reader]
  lines = [line for line in lines
           if line and not (skip_headings and line.startswith("="))]
  if not lines:
    raise ValueError("Corpus file %s has no text" % path)
  return lines


def short_vocabulary(token_lists, max_size):
  """A vocabulary of the pieces a corpus uses, at most `max_size` of them.

  Keeps `SPECIAL_TOKENS`, every single-character piece ("a", "##a") that
  occurs (so that WordPiece still finds a split for every word it split
  before), then the most frequent other pieces until `max_size`.

  Args:
    token_lists: lists of WordPiece tokens (from the full vocabulary).
    max_size: the size to cut to.

  Returns:
    list of tokens, the vocabulary in id order.
  """
  counts = collections.Counter(t for tokens in token_lists for t in tokens)
  for token in SPECIAL_TOKENS:
    counts.pop(token, None)
  single = sorted(t for t in counts if len(t.replace("##", "", 1)) == 1)
  others = [t for t, _ in counts.most_common() if t not in set(single)]
  room = max(0, max_size - len(SPECIAL_TOKENS) - len(single))
  return list(SPECIAL_TOKENS) + single + others[:room]


def load_corpus(name, max_vocab=8192):
  """Tokenizes a fixture corpus with a short vocabulary (cached).

  Args:
    name: a key of `CORPORA`.
    max_vocab: the vocabulary size to cut to (see `short_vocabulary`).

  Returns:
    (train_ids, valid_ids, vocab): int32 arrays of token ids, and the
    vocabulary (list of tokens; `SPECIAL_TOKENS` are its first ids).
  """
  corpus = CORPORA[name]
  cache = os.path.join(CACHE, "%s_%d.npz" % (name, max_vocab))
  if os.path.exists(cache):
    data = np.load(cache)
    return data["train"], data["valid"], list(data["vocab"])
  corpora = os.path.join(FIXTURES, "corpora")
  train_lines = read_lines(os.path.join(corpora, corpus.train_file),
                           corpus.skip_headings)
  valid_lines = None
  if corpus.valid_file:
    valid_lines = read_lines(os.path.join(corpora, corpus.valid_file),
                             corpus.skip_headings)
  full = tokenization.FullTokenizer(
      os.path.join(FIXTURES, "vocab", corpus.vocab_file),
      corpus.do_lower_case)
  vocab = short_vocabulary(
      [full.tokenize(line) for line in train_lines + (valid_lines or [])],
      max_vocab)
  os.makedirs(CACHE, exist_ok=True)
  vocab_file = cache[:-len(".npz")] + "_vocab.txt"
  with file_io.atomic_file(vocab_file) as writer:
    writer.write("\n".join(vocab) + "\n")
  short = tokenization.FullTokenizer(vocab_file, corpus.do_lower_case)

  def ids_of(lines):
    return np.array([i for line in lines
                     for i in short.convert_tokens_to_ids(
                         short.tokenize(line))], np.int32)

  train = ids_of(train_lines)
  if valid_lines is None:
    cut = int(len(train) * (1 - corpus.valid_fraction))
    train, valid = train[:cut], train[cut:]
  else:
    valid = ids_of(valid_lines)
  tmp = cache + ".tmp.npz"
  np.savez(tmp, train=train, valid=valid, vocab=np.array(vocab))
  os.replace(tmp, cache)
  return train, valid, vocab


def make_rows(ids, seq_length):
  """Cuts a token stream into rows of [CLS] + seq_length-2 tokens + [SEP].

  Args:
    ids: int32 array of token ids (ids of `SPECIAL_TOKENS` as in
      `short_vocabulary`).
    seq_length: length of each row.

  Returns:
    int32 array [num_rows, seq_length] (the tail that fills no row is dropped).
  """
  body = seq_length - 2
  count = len(ids) // body
  rows = np.empty([count, seq_length], np.int32)
  rows[:, 0] = SPECIAL_TOKENS.index("[CLS]")
  rows[:, 1:-1] = ids[:count * body].reshape(count, body)
  rows[:, -1] = SPECIAL_TOKENS.index("[SEP]")
  return rows


def dynamic_masking(vocab_size):
  """The package's in-graph masking for vocabularies of `short_vocabulary`."""
  return pretraining_dataset.DynamicMasking(
      mask_id=SPECIAL_TOKENS.index("[MASK]"),
      cls_id=SPECIAL_TOKENS.index("[CLS]"),
      sep_id=SPECIAL_TOKENS.index("[SEP]"), vocab_size=vocab_size)


def max_predictions(seq_length):
  """Masked positions per row: 15% of the tokens, rounded up."""
  return int(np.ceil(0.15 * seq_length))


def _unmasked(rows):
  """Dataset of single-segment feature dicts of `rows`, nothing masked yet."""
  num_rows, seq_length = rows.shape
  slots = max_predictions(seq_length)
  return tf.data.Dataset.from_tensor_slices({
      "input_ids": rows,
      "input_mask": np.ones_like(rows),
      "segment_ids": np.zeros_like(rows),
      "masked_lm_positions": np.zeros([num_rows, slots], np.int32),
      "masked_lm_ids": np.zeros([num_rows, slots], np.int32),
      "masked_lm_weights": np.zeros([num_rows, slots], np.float32),
  })


def train_dataset_fn(rows, masking, batch_size, seed):
  """The `Trainer.train` dataset function: shuffled rows, masked anew each time.

  Args:
    rows: int32 array [num_rows, seq_length] from `make_rows`.
    masking: a `DynamicMasking`.
    batch_size: rows per batch.
    seed: seed of the shuffle and of the masks.

  Returns:
    function (input_context, start_step) -> dataset of feature batches; a run
    resumed at `start_step` draws other orders and masks than the first one.
  """
  def dataset_fn(unused_context, start_step):
    dataset = _unmasked(rows).repeat().shuffle(
        len(rows), seed=seed + start_step)
    dataset = dataset.enumerate(start=start_step * batch_size).map(
        lambda index, features: masking(index, features, seed),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(2)
  return dataset_fn


def masked_once(rows, masking, seed=0):
  """Masks `rows` once (the validation set), with a fixed seed.

  Returns:
    dict of numpy feature arrays, one row per row of `rows`.
  """
  dataset = _unmasked(rows).enumerate().map(
      lambda index, features: masking(index, features, seed))
  batch = next(iter(dataset.batch(len(rows))))
  return {k: v.numpy() for k, v in batch.items()}


def tiny_config(vocab_size, max_position_embeddings, hidden_size=128,
                num_hidden_layers=2, **extra):
  """A tiny BertConfig: heads of 32, intermediate 4 x hidden.

  Args:
    vocab_size: the short vocabulary's size.
    max_position_embeddings: rows of the position table.
    hidden_size: width of the model (a multiple of 32).
    num_hidden_layers: layers.
    **extra: extension keys (`tupe`, `hierarchical_position_alpha`, ...).

  Returns:
    A `BertConfig`.
  """
  return BertConfig.from_dict(dict({
      "vocab_size": vocab_size, "hidden_size": hidden_size,
      "num_hidden_layers": num_hidden_layers,
      "num_attention_heads": hidden_size // 32,
      "intermediate_size": 4 * hidden_size,
      "max_position_embeddings": max_position_embeddings,
      "type_vocab_size": 2}, **extra))


def make_trainer(config, output_dir, learning_rate, num_train_steps,
                 warmup_steps, batch_size, enable_xla=False):
  """A `Trainer` of a `BertPretrainer` (masked LM only) with the original optimizer.

  Args:
    config: `BertConfig`.
    output_dir: where its checkpoints go.
    learning_rate: peak learning rate.
    num_train_steps: steps of the linear decay to 0.
    warmup_steps: steps of linear warmup.
    batch_size: rows per step.
    enable_xla: compile the forward and backward pass with XLA.

  Returns:
    A `bert_tf.training.trainer.Trainer`.
  """
  return trainer_lib.Trainer(
      tf.distribute.get_strategy(),
      lambda: BertPretrainer(config, next_sentence=False),
      pretraining.loss_fn, output_dir,
      optimizer_fn=lambda: optimization.create_optimizer(
          learning_rate, num_train_steps, warmup_steps),
      global_batch_size=batch_size, iterations_per_loop=1000,
      save_checkpoints_steps=10**9, keep_checkpoint_max=1, log_steps=10**9,
      enable_xla=enable_xla)


def evaluate(trainer, valid, batch_size=64):
  """Masked LM loss and accuracy of the trainer's model on masked rows.

  Args:
    trainer: a `Trainer` of a `BertPretrainer`.
    valid: dict of feature arrays from `masked_once`.
    batch_size: rows per batch.

  Returns:
    dict with `masked_lm_loss` and `masked_lm_accuracy` (floats, weighted by
    the masked positions, as the original metrics).
  """
  num_rows = len(valid["input_ids"])
  steps = -(-num_rows // batch_size)
  results = trainer.evaluate(
      lambda unused_context: tf.data.Dataset.from_tensor_slices(valid).batch(
          batch_size), pretraining.eval_fn, steps)
  return {k: float(results[k]) for k in ("masked_lm_loss",
                                          "masked_lm_accuracy")}


def pretrain(trainer, dataset_fn, valid, num_steps, eval_every, label="",
             also=None):
  """Trains to `num_steps`, evaluating at the start and every `eval_every` steps.

  Args:
    trainer: a `Trainer` (its global step is where training starts).
    dataset_fn: from `train_dataset_fn`.
    valid: dict of feature arrays from `masked_once`.
    num_steps: the global step to stop at.
    eval_every: steps between evaluations.
    label: printed before each evaluation line.
    also: optional dict name -> other validation features whose accuracy to
      record too.

  Returns:
    dict with lists `steps`, `loss`, `accuracy` (validation), `seconds`
    (training time, evaluations excluded) and a list of accuracies for each
    name of `also`.
  """
  also = also or {}
  curve = {"steps": [], "loss": [], "accuracy": [], "seconds": 0.0}
  curve.update({name: [] for name in also})

  def record():
    step = int(trainer.global_step.numpy())
    metrics = evaluate(trainer, valid)
    curve["steps"].append(step)
    curve["loss"].append(metrics["masked_lm_loss"])
    curve["accuracy"].append(metrics["masked_lm_accuracy"])
    for name, features in also.items():
      curve[name].append(evaluate(trainer, features)["masked_lm_accuracy"])
    print("%-32s step %6d  valid MLM loss %.4f  accuracy %.4f  (%.0fs)" %
          (label, step, metrics["masked_lm_loss"],
           metrics["masked_lm_accuracy"], curve["seconds"]), flush=True)
    return step

  step = record()
  while step < num_steps:
    began = time.time()
    trainer.train(dataset_fn, min(num_steps, step + eval_every))
    curve["seconds"] += time.time() - began
    step = record()
  return curve


def crossing_step(steps, values, target, higher_is_better=False):
  """The step at which a curve first reaches `target`, interpolated.

  Args:
    steps: evaluated steps, increasing.
    values: the metric at `steps` (a loss, or an accuracy with
      `higher_is_better`).
    target: the value to reach (<= for a loss, >= for an accuracy).
    higher_is_better: whether the metric improves upwards.

  Returns:
    float step, linear between the two evaluations around the crossing (the
    first step itself if the curve starts there), or None if the curve never
    reaches `target`.
  """
  sign = -1.0 if higher_is_better else 1.0
  for k, (step, value) in enumerate(zip(steps, values)):
    if sign * value <= sign * target:
      if k == 0:
        return float(step)
      s0, v0 = steps[k - 1], values[k - 1]
      return s0 + (step - s0) * (v0 - target) / (v0 - value)
  return None


def run_jobs(commands, jobs, log_dir):
  """Runs commands as subprocesses, at most `jobs` at a time.

  Each arm of an experiment is one process (its own graph and XLA cache,
  memory freed when it ends); its output goes to `log_dir/<name>.log`. A
  command whose result file exists when its turn comes is skipped, so that
  two invocations can share the work and an interrupted one resumes. The
  processes that run at once share the CPUs: each gets `TF_NUM_INTRAOP_THREADS`
  and `TF_NUM_INTEROP_THREADS` of its share (at least 1) unless the caller's
  environment sets them; TensorFlow's default of every CPU per process
  oversubscribes them (two 2-thread processes of the TUPE experiment's tiny
  models on enwik8 on 2 cores: 82 ms per step each; two 1-thread ones: 54 ms).

  Args:
    commands: list of (name, argv list, result file the command writes).
    jobs: processes at a time.
    log_dir: directory of the logs.

  Raises:
    RuntimeError: naming the failed commands and their logs.
  """
  os.makedirs(log_dir, exist_ok=True)
  share = str(max(1, len(os.sched_getaffinity(0)) //
                  max(1, min(jobs, len(commands)))))
  env = dict(os.environ)
  for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
    env.setdefault(name, share)
  pending, running, failed = list(commands), [], []
  while pending or running:
    while pending and len(running) < jobs:
      name, argv, result = pending.pop(0)
      log = os.path.join(log_dir, name + ".log")
      if os.path.exists(result) or _is_running(log):
        continue
      print("start %s (log %s)" % (name, log), flush=True)
      with open(log, "w") as writer:
        process = subprocess.Popen(argv, stdout=writer,
                                   stderr=subprocess.STDOUT, env=env)
      with open(log + ".pid", "w") as writer:
        writer.write(str(process.pid))
      running.append((name, log, process))
    time.sleep(2)
    for item in list(running):
      name, log, process = item
      if process.poll() is not None:
        running.remove(item)
        os.remove(log + ".pid")
        print("done  %s (exit %d)" % (name, process.returncode), flush=True)
        if process.returncode:
          failed.append("%s (see %s)" % (name, log))
  if failed:
    raise RuntimeError("Failed runs: %s" % ", ".join(failed))


def _is_running(log):
  """Whether another invocation's process of this log is alive."""
  try:
    with open(log + ".pid") as reader:
      os.kill(int(reader.read()), 0)
    return True
  except (OSError, ValueError):
    return False


def write_json(value, path):
  """Writes `value` as JSON to `path`, renamed into place when complete."""
  with file_io.atomic_file(path) as writer:
    writer.write(json.dumps(value, indent=1))


def add_shared_flags(parser, output_dir, one_help):
  """Adds the flags both experiments take to an `argparse` parser.

  Args:
    parser: `argparse.ArgumentParser`.
    output_dir: default `--output_dir` (the experiment's directory).
    one_help: help of the internal `--one` flag (what one process runs).
  """
  parser.add_argument("--hidden_size", type=int, default=64)
  parser.add_argument("--num_layers", type=int, default=2)
  parser.add_argument("--initializer_range", type=float, default=0.1,
                      help="standard deviation of every initial weight (BERT's "
                      "is 0.02, under which these tiny models stay on the "
                      "unigram plateau)")
  parser.add_argument("--vocab_size", type=int, default=8192)
  parser.add_argument("--eval_every", type=int, default=50)
  parser.add_argument("--jobs", type=int, default=1,
                      help="runs (processes) at a time")
  parser.add_argument("--output_dir", default=output_dir)
  parser.add_argument("--one", default=None, help="internal: " + one_help)


def save_figure(figure, path):
  """Saves a matplotlib figure as a PNG, renamed into place when complete."""
  tmp = path + ".tmp.png"
  figure.savefig(tmp, dpi=100)
  os.replace(tmp, path)


# Flags that say how this invocation runs, not what the results are.
INTERNAL_FLAGS = ("one", "report_only")


def settings_of(args, **extra):
  """The run's settings as recorded in results.json.

  Args:
    args: the parsed `argparse` namespace (with the shared flags).
    **extra: further entries (e.g. the corpora and seeds found).

  Returns:
    dict of every flag but the `INTERNAL_FLAGS`, with `output_dir` relative
    to the repository root when it lies inside it (the same in every
    checkout); `command`: the command line's flags without the internal
    ones; and `extra`.
  """
  settings = {k: v for k, v in vars(args).items()
              if k not in INTERNAL_FLAGS}
  settings["command"] = " ".join(
      a for a in sys.argv[1:]
      if not any(a.startswith("--" + flag) for flag in INTERNAL_FLAGS))
  output_dir = os.path.abspath(args.output_dir)
  if output_dir.startswith(ROOT + os.sep):
    settings["output_dir"] = os.path.relpath(output_dir, ROOT)
  settings.update(extra)
  return settings


def write_results(output_dir, results, text):
  """Writes results.json and results.md into `output_dir` and prints the text.

  Args:
    output_dir: the experiment's directory.
    results: JSON-serializable dict (settings, curves, summary).
    text: the Markdown report.
  """
  write_json(results, os.path.join(output_dir, "results.json"))
  with file_io.atomic_file(os.path.join(output_dir, "results.md")) as writer:
    writer.write(text)
  print(text)
