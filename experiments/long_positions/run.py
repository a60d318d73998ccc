"""From 128 positions to 512: hierarchical decomposition vs new vs repeated rows.

Su Jianlin's hierarchical decomposition extends a learned table of n position
vectors p to n*n positions, q[i*n + j] = a*u[i] + (1-a)*u[j] with
u = (p - a*p[0]) / (1-a), and claims that a model so extended keeps working
past n with little further training, better than new or repeated positions.
This measures that claim with a tiny BERT:

1. `base`: pretrain a masked-LM BERT with 128 learned positions on WikiText-2
   sequences of 128 tokens (a short vocabulary of mostly single characters,
   so that a masked piece is told far better by its neighbours than by the
   bag of the row's pieces); its validation masked-LM accuracy at 128 tokens
   is the target. Its curve also scores the rows with their tokens permuted
   (what the model makes of them without their order).
2. `ablation`, the entry check: the claim can only be tested with a base that
   uses its positions. The base is evaluated at 128 tokens with its
   position table's rows shuffled, and with every row set to their mean; both
   must cost more than `ENTRY_SIGMAS` sigma of the evaluation (binomial over
   the masked tokens), or the command stops there and says so.
3. Three 512-token models start from the base checkpoint; only the positions
   past 127 differ:
   - `hierarchical`: the same 128-row table, `hierarchical_position_alpha`
     0.4 (rows 0..127 exact, the rest decomposed);
   - `random`: a 512-row table, rows 0..127 the trained ones, rows 128..511
     drawn like a fresh table (truncated normal, `initializer_range`);
   - `repeated`: a 512-row table whose row i is trained row i mod 128.
   Each is evaluated at 512 tokens with no further training (step 0), then
   pretrained further on 512-token sequences, evaluated every `--eval_every`
   steps: masked-LM accuracy over all masked tokens, and over those at
   positions 128..511 only.

Writes beside this file `runs/` (the base checkpoint and one JSON per model;
a model whose JSON exists is not trained again, so an interrupted command
resumes), `results.json`, `accuracy.png` and `results.md`.

Usage (about 45 minutes on 2 cores shared with other jobs, load 8-12: the base
21, the entry check 1, the three 512-token models 23, three at a time):
  PYTHONPATH=. python experiments/long_positions/run.py
"""

import argparse
import json
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from experiments import common  # pylint: disable=g-import-not-at-top

BASE_LENGTH = 128
ENTRY_SIGMAS = 4  # how far below the trained accuracy the ablations must be
POSITIONS = "bert/embeddings/position_embeddings"
ARMS = {
    "hierarchical": "hierarchical, alpha 0.4",
    "random": "new rows, random",
    "repeated": "repeated rows (i mod 128)",
}


def extend_position_table(table, length, mode, initializer_range, seed):
  """A position table of `length` rows from a trained one of n rows.

  Args:
    table: float array [n, width], the trained `position_embeddings`.
    length: rows wanted (> n).
    mode: "random" (rows n.. drawn from a truncated normal with standard
      deviation `initializer_range`, as a fresh table) or "repeated" (row i
      is table[i mod n]).
    initializer_range: see `mode`.
    seed: seed of the random rows.

  Returns:
    float32 array [length, width] whose first n rows are `table`.

  Raises:
    ValueError: for another `mode`.
  """
  n, width = table.shape
  if mode == "repeated":
    return table[np.arange(length) % n].astype(np.float32)
  if mode != "random":
    raise ValueError("Unknown mode %r (expected 'random' or 'repeated')" %
                     mode)
  rng = np.random.RandomState(seed)
  new = rng.normal(0.0, initializer_range, [length - n, width])
  while np.any(np.abs(new) > 2 * initializer_range):  # truncated at 2 stddev
    bad = np.abs(new) > 2 * initializer_range
    new[bad] = rng.normal(0.0, initializer_range, bad.sum())
  return np.concatenate([table, new]).astype(np.float32)


def base_config(args, vocab_size, num_positions, **extra):
  """The tiny BertConfig of the flags, with `num_positions` position rows.

  Args:
    args: the parsed flags (`--hidden_size`, `--num_layers`,
      `--initializer_range`).
    vocab_size: the short vocabulary's size.
    num_positions: `max_position_embeddings`.
    **extra: more config keys (`hierarchical_position_alpha`).

  Returns:
    A `BertConfig`.
  """
  return common.tiny_config(vocab_size, num_positions, args.hidden_size,
                            args.num_layers,
                            initializer_range=args.initializer_range, **extra)


def data(args, seq_length, num_valid):
  """Training rows, validation features and the vocabulary size.

  Returns:
    (rows [n, seq_length], valid features masked once, vocab_size).
  """
  train_ids, valid_ids, vocab = common.load_corpus("wikitext2",
                                                   args.vocab_size)
  masking = common.dynamic_masking(len(vocab))
  rows = common.make_rows(train_ids, seq_length)
  valid = common.masked_once(
      common.make_rows(valid_ids, seq_length)[:num_valid], masking)
  return rows, valid, masking, len(vocab)


def beyond(valid, first_position):
  """The validation features scoring only masked positions >= first_position."""
  far = dict(valid)
  far["masked_lm_weights"] = valid["masked_lm_weights"] * (
      valid["masked_lm_positions"] >= first_position)
  return far


def order_shuffled(valid, seed=0):
  """The validation features with every row's tokens moved by one permutation.

  Token k of a row goes to slot perm[k] (its masked positions move with it).
  The encoder sees no order but its position vectors (every attention mask is
  all ones), so this scores the model as if its position table's rows were
  shuffled: a model that ignores positions scores the same on both.

  Args:
    valid: dict of feature arrays from `common.masked_once`.
    seed: seed of the permutation.

  Returns:
    dict of feature arrays like `valid`.
  """
  length = valid["input_ids"].shape[1]
  perm = np.random.RandomState(seed).permutation(length)
  moved = dict(valid)
  for name in ("input_ids", "input_mask", "segment_ids"):
    moved[name] = np.empty_like(valid[name])
    moved[name][:, perm] = valid[name]
  moved["masked_lm_positions"] = perm[valid["masked_lm_positions"]].astype(
      valid["masked_lm_positions"].dtype)
  return moved


def run_base(args, runs_dir):
  """Pretrains the 128-position model; writes its checkpoint and curve."""
  import keras  # pylint: disable=g-import-not-at-top
  rows, valid, masking, vocab_size = data(args, BASE_LENGTH,
                                          args.num_valid_128)
  keras.utils.set_random_seed(args.seed)
  config = base_config(args, vocab_size, BASE_LENGTH)
  output_dir = os.path.join(runs_dir, "base")
  trainer = common.make_trainer(
      config, output_dir, args.learning_rate, args.base_steps,
      args.base_steps // 10, args.base_batch_size, enable_xla=True)
  curve = common.pretrain(
      trainer, common.train_dataset_fn(rows, masking, args.base_batch_size,
                                       args.seed),
      valid, args.base_steps, args.base_eval_every, label="base (128 tokens)",
      also={"accuracy_order_shuffled": order_shuffled(valid)})
  with open(os.path.join(output_dir, "bert_config.json"), "w") as writer:
    writer.write(config.to_json_string())
  curve["checkpoint"] = trainer.save()
  curve["num_train_rows"] = len(rows)
  curve["vocab_size"] = vocab_size
  curve["num_masked"] = float(valid["masked_lm_weights"].sum())
  common.write_json(curve, os.path.join(runs_dir, "base.json"))


def arm_checkpoint(arm, base, config, output_dir, seed):
  """Writes the arm's starting checkpoint; returns its prefix.

  The hierarchical arm starts from the base checkpoint as it is; the others
  get a 512-row position table (`extend_position_table`).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from bert_tf import checkpoints  # pylint: disable=g-import-not-at-top
  if arm == "hierarchical":
    return base["checkpoint"]
  reader = tf.train.load_checkpoint(base["checkpoint"])
  tensors = {name: reader.get_tensor(name)
             for name in reader.get_variable_to_shape_map()
             if not checkpoints.is_training_state(name)}
  tensors[POSITIONS] = extend_position_table(
      tensors[POSITIONS], config.max_position_embeddings, arm,
      config.initializer_range, seed)
  return checkpoints.save_checkpoint(
      tensors, os.path.join(output_dir, "init.ckpt"))


def run_ablation(args, runs_dir):
  """How much the base model uses its positions, at 128 tokens.

  Evaluates the base checkpoint with its position table as trained, with the
  rows shuffled (a fixed permutation), and with every row replaced by their
  mean (no position information); writes `runs/ablation.json`.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from bert_tf import checkpoints  # pylint: disable=g-import-not-at-top
  with open(os.path.join(runs_dir, "base.json")) as reader:
    base = json.load(reader)
  _, valid, _, vocab_size = data(args, BASE_LENGTH, args.num_valid_128)
  config = base_config(args, vocab_size, BASE_LENGTH)
  output_dir = os.path.join(runs_dir, "ablation")
  trainer = common.make_trainer(config, output_dir, args.learning_rate, 1, 0,
                                args.base_batch_size)
  trainer.initialize(init_checkpoint=base["checkpoint"])
  table = tf.train.load_checkpoint(base["checkpoint"]).get_tensor(POSITIONS)
  variable = checkpoints.variables_by_name(trainer.model)[POSITIONS]
  tables = {
      "trained": table,
      "rows shuffled": table[np.random.RandomState(0).permutation(len(table))],
      "every row the mean": np.broadcast_to(table.mean(axis=0), table.shape),
  }
  results = {}
  for name, value in tables.items():
    variable.assign(value)
    results[name] = common.evaluate(trainer, valid)
    print(name, results[name], flush=True)
  common.write_json(results, os.path.join(runs_dir, "ablation.json"))


def run_arm(arm, args, runs_dir):
  """Extends the base model to 512 positions one way and trains it on."""
  import keras  # pylint: disable=g-import-not-at-top
  with open(os.path.join(runs_dir, "base.json")) as reader:
    base = json.load(reader)
  rows, valid, masking, vocab_size = data(args, args.long_length,
                                          args.num_valid_long)
  keras.utils.set_random_seed(args.seed)
  if arm == "hierarchical":
    config = base_config(args, vocab_size, BASE_LENGTH,
                         hierarchical_position_alpha=0.4)
  else:
    config = base_config(args, vocab_size, args.long_length)
  output_dir = os.path.join(runs_dir, arm)
  os.makedirs(output_dir, exist_ok=True)
  init = arm_checkpoint(arm, base, config, output_dir, args.seed)
  trainer = common.make_trainer(
      config, output_dir, args.long_learning_rate, args.long_steps,
      args.long_steps // 10, args.long_batch_size, enable_xla=True)
  report = trainer.initialize(init_checkpoint=init)
  print("initialized from %s" % report, flush=True)
  curve = common.pretrain(
      trainer, common.train_dataset_fn(rows, masking, args.long_batch_size,
                                       args.seed),
      valid, args.long_steps, args.eval_every, label=arm,
      also={"accuracy_beyond_128": beyond(valid, BASE_LENGTH)})
  curve["num_train_rows"] = len(rows)
  curve["num_masked"] = float(valid["masked_lm_weights"].sum())
  curve["num_masked_beyond_128"] = float(
      beyond(valid, BASE_LENGTH)["masked_lm_weights"].sum())
  common.write_json(curve, os.path.join(runs_dir, arm + ".json"))


def two_sigma(accuracy, num_masked):
  """Half-width of the evaluation's +-2 sigma band (binomial, per masked token).

  Args:
    accuracy: the measured accuracy.
    num_masked: masked tokens it was measured on.

  Returns:
    float, 2 * sqrt(accuracy * (1 - accuracy) / num_masked).
  """
  return 2.0 * np.sqrt(accuracy * (1.0 - accuracy) / num_masked)


def entry_check(base):
  """Whether the base model uses its positions, from its ablation.

  The check passes when both ablations (rows shuffled, every row the mean)
  cost more than `ENTRY_SIGMAS` sigma of the 128-token evaluation.

  Args:
    base: the base curve (`runs/base.json`) with its `ablation` results.

  Returns:
    dict: `accuracy` (trained table), `two_sigma` (its +-2 sigma half-width),
    `threshold` (the drop needed), `drops` (name -> accuracy lost) and
    `passed`.
  """
  metrics = base["ablation"]
  accuracy = metrics["trained"]["masked_lm_accuracy"]
  noise = two_sigma(accuracy, base["num_masked"])
  drops = {name: accuracy - value["masked_lm_accuracy"]
           for name, value in metrics.items() if name != "trained"}
  threshold = ENTRY_SIGMAS / 2.0 * noise
  return {"accuracy": accuracy, "two_sigma": noise, "threshold": threshold,
          "drops": drops, "passed": bool(min(drops.values()) > threshold)}


def plot(base, arms, settings, path):
  """The base's training at 128 tokens; the arms' accuracy at 512 against steps."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  figure, axes = pyplot.subplots(1, 3, figsize=(16, 4.6))
  axes[0].plot(base["steps"], base["accuracy"], marker=".",
               label="positions as trained")
  axes[0].plot(base["steps"], base["accuracy_order_shuffled"], marker=".",
               label="rows shuffled (tokens permuted)")
  axes[0].set_title("base at %d tokens: is order used?" % BASE_LENGTH)
  axes[0].set_xlabel("pretraining steps at %d tokens (batch %d)" %
                     (BASE_LENGTH, settings["base_batch_size"]))
  axes[0].set_ylabel("validation masked-LM accuracy")
  axes[0].legend()
  axes[0].grid(alpha=0.3)
  target = base["accuracy"][-1]
  noise = two_sigma(target, base["num_masked"])
  for arm, title in ARMS.items():
    curve = arms[arm]
    axes[1].plot(curve["steps"], curve["accuracy"], marker=".", label=title)
    axes[2].plot(curve["steps"], curve["accuracy_beyond_128"], marker=".",
                 label=title)
  for axis, what in zip(axes[1:], ("all masked tokens",
                                   "positions 128-511 only")):
    axis.axhline(target, color="gray", linestyle=":",
                 label="base at 128 tokens (band: +-2 sigma)")
    axis.axhspan(target - noise, target + noise, color="gray", alpha=0.15)
    axis.set_title("accuracy at %d tokens: %s" %
                   (settings["long_length"], what))
    axis.set_xlabel("further pretraining steps at %d tokens (batch %d)" %
                    (settings["long_length"], settings["long_batch_size"]))
    axis.grid(alpha=0.3)
  axes[1].legend()
  figure.tight_layout()
  common.save_figure(figure, path)


def report_base(base, settings):
  """The results.md lines on the base model and its entry check."""
  target = base["accuracy"][-1]
  check = entry_check(base)
  lines = [
      "# From 128 to 512 positions: hierarchical vs new vs repeated rows",
      "",
      "Command: `PYTHONPATH=. python experiments/long_positions/run.py%s`." %
      (" " + settings["command"]).rstrip(),
      "",
      "Base: %d layers, hidden %d, %d heads, %d learned positions, "
      "initializer_range %g, pretrained (masked LM only, dynamic masking "
      "15%%, the original optimizer, peak lr %g, 10%% warmup, linear decay) "
      "for %d steps of batch %d x %d tokens on WikiText-2 (test split, "
      "vocabulary cut to %d pieces, %d sequences) in %.0f min of training. "
      "Validation: WikiText-2 valid, %d sequences of 128 tokens, masked once "
      "(%d masked tokens). Its final validation MLM accuracy at 128 tokens, "
      "the target: **%.4f** +- %.4f (2 sigma; loss %.4f)." % (
          settings["num_layers"], settings["hidden_size"],
          settings["hidden_size"] // 32, BASE_LENGTH,
          settings["initializer_range"], settings["learning_rate"],
          settings["base_steps"], settings["base_batch_size"], BASE_LENGTH,
          base["vocab_size"], base["num_train_rows"], base["seconds"] / 60.0,
          settings["num_valid_128"], base["num_masked"], target,
          two_sigma(target, base["num_masked"]), base["loss"][-1]),
      "",
      "Entry check, does the base use its positions? Its validation metrics "
      "at 128 tokens with the position table changed (no training); the "
      "check needs both changes to cost more than %d sigma (%.4f):" % (
          ENTRY_SIGMAS, check["threshold"]),
      "",
      "| position table | MLM accuracy | accuracy lost | MLM loss |",
      "|---|---|---|---|",
  ]
  for name, metrics in base["ablation"].items():
    lines.append("| %s | %.4f | %s | %.4f |" % (
        name, metrics["masked_lm_accuracy"],
        "%.4f" % check["drops"][name] if name in check["drops"] else "",
        metrics["masked_lm_loss"]))
  lines += ["", "Entry check **%s**." % ("passed" if check["passed"] else
                                         "FAILED: the base does not use its "
                                         "positions, the arms were not run"),
            "", "The base during pretraining (accuracy at 128 tokens, and "
            "with its rows shuffled, i.e. each row's tokens permuted):", "",
            "| step | %s |" % " | ".join(str(s) for s in base["steps"]),
            "|---|%s" % ("---|" * len(base["steps"])),
            "| accuracy | %s |" % " | ".join("%.3f" % a
                                            for a in base["accuracy"]),
            "| rows shuffled | %s |" % " | ".join(
                "%.3f" % a for a in base["accuracy_order_shuffled"]), ""]
  return lines


def report_arms(base, arms, settings):
  """The results.md lines on the three 512-token models."""
  target = base["accuracy"][-1]
  some = next(iter(arms.values()))
  lines = [
      "Each 512-token model starts from the base checkpoint and trains on for "
      "%d steps of batch %d x %d tokens (peak lr %g, 10%% warmup, linear "
      "decay; %.0f min of training summed over the three), validated every %d "
      "steps on %d "
      "sequences of %d tokens of WikiText-2 valid (masked once, the same for "
      "the three: %d masked tokens, %d of them past position 127; +-2 sigma "
      "at accuracy %.2f: %.4f and %.4f)." % (
          settings["long_steps"], settings["long_batch_size"],
          settings["long_length"], settings["long_learning_rate"],
          sum(a["seconds"] for a in arms.values()) / 60.0,
          settings["eval_every"], settings["num_valid_long"],
          settings["long_length"], some["num_masked"],
          some["num_masked_beyond_128"], target,
          two_sigma(target, some["num_masked"]),
          two_sigma(target, some["num_masked_beyond_128"])),
      "",
      "| positions past 127 | accuracy at step 0 | past 128, step 0 | "
      "final accuracy | past 128, final | steps to the base's 128-token "
      "accuracy | past 128: steps to it |",
      "|---|---|---|---|---|---|---|",
  ]
  for arm, title in ARMS.items():
    curve = arms[arm]
    cells = []
    for values in (curve["accuracy"], curve["accuracy_beyond_128"]):
      step = common.crossing_step(curve["steps"], values, target,
                                  higher_is_better=True)
      cells.append("not within %d" % settings["long_steps"] if step is None
                   else "%.0f" % step)
    lines.append("| %s | %.4f | %.4f | %.4f | %.4f | %s | %s |" % (
        title, curve["accuracy"][0], curve["accuracy_beyond_128"][0],
        curve["accuracy"][-1], curve["accuracy_beyond_128"][-1], cells[0],
        cells[1]))
  lines += ["", "Steps are interpolated between evaluations (every %d "
            "steps)." % settings["eval_every"], "",
            "![accuracy at 512 tokens](accuracy.png)", ""]
  return lines


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--base_steps", type=int, default=2000)
  parser.add_argument("--base_eval_every", type=int, default=250)
  parser.add_argument("--base_batch_size", type=int, default=16)
  parser.add_argument("--learning_rate", type=float, default=1e-3)
  parser.add_argument("--long_length", type=int, default=512)
  parser.add_argument("--long_steps", type=int, default=480)
  parser.add_argument("--long_batch_size", type=int, default=4)
  parser.add_argument("--long_learning_rate", type=float, default=5e-4)
  parser.add_argument("--num_valid_128", type=int, default=512)
  parser.add_argument("--num_valid_long", type=int, default=128)
  parser.add_argument("--seed", type=int, default=1)
  common.add_shared_flags(parser, HERE,
                          "'base', 'ablation' or an arm to run in this process")
  parser.set_defaults(hidden_size=128, vocab_size=256, eval_every=40, jobs=3)
  args = parser.parse_args()
  runs_dir = os.path.join(args.output_dir, "runs")
  if args.one == "base":
    run_base(args, runs_dir)
    return
  if args.one == "ablation":
    run_ablation(args, runs_dir)
    return
  if args.one:
    run_arm(args.one, args, runs_dir)
    return
  common.load_corpus("wikitext2", args.vocab_size)  # tokenize once
  forwarded = [a for a in sys.argv[1:] if not a.startswith("--one")]
  me = [sys.executable, os.path.abspath(__file__)] + forwarded
  logs = os.path.join(runs_dir, "logs")
  common.run_jobs([("base", me + ["--one=base"],
                    os.path.join(runs_dir, "base.json"))], 1, logs)
  common.run_jobs([("ablation", me + ["--one=ablation"],
                    os.path.join(runs_dir, "ablation.json"))], 1, logs)
  with open(os.path.join(runs_dir, "base.json")) as reader:
    base = json.load(reader)
  with open(os.path.join(runs_dir, "ablation.json")) as reader:
    base["ablation"] = json.load(reader)
  settings = common.settings_of(args)
  results = {"settings": settings, "base": base,
             "entry_check": entry_check(base)}
  if not results["entry_check"]["passed"]:
    common.write_results(args.output_dir, results,
                         "\n".join(report_base(base, settings)))
    raise SystemExit("Entry check failed: the base model does not use its "
                     "positions (see %s); train it longer or larger "
                     "(--base_steps, --hidden_size, --num_layers)." %
                     os.path.join(args.output_dir, "results.md"))
  common.run_jobs([(arm, me + ["--one=" + arm],
                    os.path.join(runs_dir, arm + ".json"))
                   for arm in ARMS], args.jobs, logs)
  results["arms"] = {}
  for arm in ARMS:
    with open(os.path.join(runs_dir, arm + ".json")) as reader:
      results["arms"][arm] = json.load(reader)
  plot(base, results["arms"], settings,
       os.path.join(args.output_dir, "accuracy.png"))
  common.write_results(
      args.output_dir, results,
      "\n".join(report_base(base, settings) +
                 report_arms(base, results["arms"], settings)))


if __name__ == "__main__":
  main()
