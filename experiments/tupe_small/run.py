"""TUPE at small scale: how soon TUPE-A and TUPE-R reach the baseline's final loss.

The TUPE paper reports that TUPE reaches the final masked-LM loss of BERT-base
in about 30% of its pretraining steps. This measures the same ratio with tiny
BERTs that differ only in the position option of their config (learned
absolute positions, `tupe: "absolute"`, `tupe: "relative"`), on the four
fixture corpus files (`CORPORA`: WikiText-2's test and valid files as two
corpora of different articles, CLUECorpusSmall, enwik8) and several seeds,
under a warmup + linear decay schedule in which the baseline leaves the
unigram plateau early.

For each corpus and seed it records the validation masked-LM loss every
`--eval_every` steps, and reports the step at which TUPE-A / TUPE-R first
reach the baseline's final validation loss (same corpus, same seed), as a
fraction of the baseline's steps (linear interpolation between the two
evaluations around the crossing), and how much each curve still fell over the
last `LAST_PART` of the steps (how flat it is). Whether the baseline has
converged is then measured, not assumed: the three models of the first seed
are trained again on every corpus with a `--check_factor` times longer
schedule, and the report states how much lower each ends and when TUPE-A /
TUPE-R reach the longer baseline's final loss. Writes beside this file:

- `runs/<corpus>_<variant>_<seed>.json`: one run's curve, and
  `runs/<corpus>_<variant>_<seed>_x<factor>.json` a check's (a run whose file
  exists is not run again, so an interrupted command resumes);
- `results.json`: the settings, every curve, the fractions;
- `loss_curves.png`: validation loss against steps, one panel per corpus,
  mean over seeds with the min-max band;
- `results.md`: the tables.

Usage (36 runs of 12,000 steps, 16-26 minutes each with three at a time on 2
cores, then 12 check runs of 24,000 steps, about 35 minutes each: about 6
hours 10 minutes; a second invocation of the same command shares the
remaining runs):
  PYTHONPATH=. python experiments/tupe_small/run.py [--jobs 3]
"""

import argparse
import json
import os
import sys
import tempfile

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from experiments import common  # pylint: disable=g-import-not-at-top

# The fixture corpora: WikiText-2's two files as two corpora (different
# articles), CLUECorpusSmall and enwik8, each holding out its last 10%.
CORPORA = ("wikitext2_test", "wikitext2_valid", "clue", "enwik8")
# The last fraction of the schedule over which a curve's flatness is reported.
LAST_PART = 0.25
# The baseline's cell in the "reaches the baseline's final" columns.
BASELINE_REACHED = "100% (by definition)"

VARIANTS = {
    "baseline": ("learned absolute (BERT)", {}),
    "tupe_a": ("TUPE-A", {"tupe": "absolute"}),
    "tupe_r": ("TUPE-R", {"tupe": "relative"}),
}


def run_name(corpus, variant, seed, factor):
  """A run's file name: `<corpus>_<variant>_<seed>`, `_x<factor>` if longer."""
  name = "%s_%s_%d" % (corpus, variant, seed)
  return name if factor == 1 else "%s_x%d" % (name, factor)


def run_one(corpus, variant, seed, args, path, factor=1):
  """Pretrains one model and writes its validation curve to `path`.

  Args:
    corpus: key of `common.CORPORA`.
    variant: key of `VARIANTS`.
    seed: the run's seed.
    args: the parsed flags.
    path: the JSON file to write.
    factor: the schedule's length in multiples of `--steps` (its warmup
      scaled alike): 1 for the grid, `--check_factor` for the check.
  """
  import keras  # pylint: disable=g-import-not-at-top
  train_ids, valid_ids, vocab = common.load_corpus(corpus, args.vocab_size)
  masking = common.dynamic_masking(len(vocab))
  rows = common.make_rows(train_ids, args.seq_length)
  valid = common.masked_once(
      common.make_rows(valid_ids, args.seq_length)[:args.num_valid], masking)
  keras.utils.set_random_seed(seed)
  config = common.tiny_config(len(vocab), args.seq_length, args.hidden_size,
                              args.num_layers,
                              initializer_range=args.initializer_range,
                              **VARIANTS[variant][1])
  with tempfile.TemporaryDirectory() as output_dir:
    trainer = common.make_trainer(config, output_dir, args.learning_rate,
                                  factor * args.steps,
                                  factor * args.warmup_steps,
                                  args.batch_size, enable_xla=True)
    curve = common.pretrain(
        trainer, common.train_dataset_fn(rows, masking, args.batch_size, seed),
        valid, factor * args.steps, args.eval_every,
        label="%s %s seed %d" % (corpus, variant, seed))
  curve.update(corpus=corpus, variant=variant, seed=seed, factor=factor,
               num_train_rows=len(rows), num_valid_rows=len(valid["input_ids"]),
               vocab_size=len(vocab))
  common.write_json(curve, path)


def complete_seeds(runs, corpus, seeds):
  """The seeds whose runs of `corpus` are all done (all three variants)."""
  return [seed for seed in seeds
          if all((corpus, variant, seed) in runs for variant in VARIANTS)]


def fraction_reached(curve, baseline):
  """When `curve` first reaches `baseline`'s final loss, as a fraction.

  Args:
    curve: a run's curve (`steps`, `loss`).
    baseline: the baseline's curve of the same schedule.

  Returns:
    float, the crossing step (`common.crossing_step`) over the baseline's
    last step; None if never reached.
  """
  step = common.crossing_step(curve["steps"], curve["loss"],
                              baseline["loss"][-1])
  return None if step is None else step / baseline["steps"][-1]


def late_start(steps, total_steps):
  """Index of the last evaluation at or before (1 - `LAST_PART`) of the steps.

  Args:
    steps: a curve's evaluated steps, increasing, starting at 0.
    total_steps: the schedule's steps.

  Returns:
    int index into `steps`.
  """
  return max(k for k, step in enumerate(steps)
             if step <= (1 - LAST_PART) * total_steps)


def late_drop(curve, total_steps):
  """How much the validation loss still fell over (at least) its last part.

  Args:
    curve: a run's curve (`steps`, `loss`).
    total_steps: the schedule's steps.

  Returns:
    float, the loss at the evaluation `late_start` picks minus the final loss
    (positive: still falling).
  """
  return (curve["loss"][late_start(curve["steps"], total_steps)] -
          curve["loss"][-1])


def summarize(runs, corpora, seeds, total_steps):
  """Per corpus and variant: final losses, flatness and fractions over seeds.

  Args:
    runs: dict (corpus, variant, seed) -> curve.
    corpora: corpus keys.
    seeds: seeds (those without all three runs of a corpus are left out).
    total_steps: the baseline's steps.

  Returns:
    dict corpus -> {"seeds": [...], variant -> {"final": [final loss per
    seed], "accuracy": [final accuracy per seed], "late_drop": [`late_drop`
    per seed], "fraction": [per seed, None where not reached]}}.
  """
  summary = {}
  for corpus in corpora:
    summary[corpus] = {"seeds": complete_seeds(runs, corpus, seeds)}
    for variant in VARIANTS:
      finals, accuracies, drops, fractions = [], [], [], []
      for seed in summary[corpus]["seeds"]:
        curve = runs[(corpus, variant, seed)]
        finals.append(curve["loss"][-1])
        accuracies.append(curve["accuracy"][-1])
        drops.append(late_drop(curve, total_steps))
        fractions.append(fraction_reached(
            curve, runs[(corpus, "baseline", seed)]))
      summary[corpus][variant] = {"final": finals, "accuracy": accuracies,
                                  "late_drop": drops, "fraction": fractions}
  return summary


def mean_spread(values, percent=False):
  """'mean (min-max)' of the values that are not None."""
  values = [v for v in values if v is not None]
  if not values:
    return "not reached"
  scale, unit, digits = (100.0, "%", 0) if percent else (1.0, "", 3)
  text = "%.*f%s (%.*f-%.*f)" % (
      digits, scale * np.mean(values), unit, digits, scale * min(values),
      digits, scale * max(values))
  return text


def plot(runs, checks, settings, path):
  """Draws the validation curves, one panel per corpus, into `path`.

  Args:
    runs: dict (corpus, variant, seed) -> curve.
    checks: dict (corpus, variant) -> the longer schedule's curve (drawn
      dashed, in the variant's color).
    settings: the run settings (`corpora`, `seeds`, batch shape).
    path: the PNG file.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  corpora, seeds = settings["corpora"], settings["seeds"]
  columns = min(2, len(corpora))
  rows = -(-len(corpora) // columns)
  figure, axes = pyplot.subplots(rows, columns, squeeze=False,
                                 figsize=(6.4 * columns, 4.4 * rows))
  axes = axes.ravel()
  for axis, corpus in zip(axes, corpora):
    done = complete_seeds(runs, corpus, seeds)
    if not done:
      continue
    drawn = []
    for variant, (title, _) in VARIANTS.items():
      curves = [runs[(corpus, variant, seed)] for seed in done]
      steps = np.array(curves[0]["steps"][1:])
      losses = np.array([c["loss"][1:] for c in curves])
      line, = axis.plot(steps, losses.mean(axis=0), label=title)
      axis.fill_between(steps, losses.min(axis=0), losses.max(axis=0),
                        color=line.get_color(), alpha=0.2)
      drawn += curves
      check = checks.get((corpus, variant))
      if check is not None:
        axis.plot(check["steps"][1:], check["loss"][1:],
                  color=line.get_color(), linestyle="--",
                  label="%s, %dx steps (seed %d)" % (title, check["factor"],
                                                     check["seed"]))
        drawn.append(check)
    final = np.mean([runs[(corpus, "baseline", s)]["loss"][-1]
                     for s in done])
    axis.axhline(final, color="gray", linestyle=":",
                 label="baseline final loss")
    axis.set_title("%s (seeds %s)" % (common.CORPORA[corpus].title,
                                      ", ".join(map(str, done))))
    axis.set_xlabel("step (batch %d x %d tokens)" %
                    (settings["batch_size"], settings["seq_length"]))
    lowest = min(min(c["loss"]) for c in drawn)
    first = max(c["loss"][1] for c in drawn)
    axis.set_ylim(lowest - 0.1, first + 0.1)
    axis.grid(alpha=0.3)
    axis.set_ylabel("validation masked-LM loss")
  axes[0].legend()
  figure.suptitle("Learned absolute positions vs TUPE-A vs TUPE-R: mean "
                  "over seeds, band = min-max")
  figure.tight_layout()
  common.save_figure(figure, path)


def check_summary(runs, checks, corpora):
  """Per corpus with a convergence check: the longer schedule against the grid.

  Args:
    runs: dict (corpus, variant, seed) -> curve.
    checks: dict (corpus, variant) -> the longer schedule's curve.
    corpora: corpus keys.

  Returns:
    dict corpus -> {"seed", "steps" (the check's), and per variant whose check
    and grid runs (same seed, baseline's too) are all done: {"grid_final",
    "final" (the check's final loss), "grid_fraction" and "fraction"
    (`fraction_reached` in the grid and in the check)}}.
  """
  summary = {}
  for corpus in corpora:
    baseline = checks.get((corpus, "baseline"))
    if baseline is None:
      continue
    seed, total = baseline["seed"], baseline["steps"][-1]
    cell = {"seed": seed, "steps": total}
    for variant in VARIANTS:
      check = checks.get((corpus, variant))
      grid = runs.get((corpus, variant, seed))
      grid_baseline = runs.get((corpus, "baseline", seed))
      if check is None or grid is None or grid_baseline is None:
        continue
      cell[variant] = {
          "grid_final": grid["loss"][-1], "final": check["loss"][-1],
          "grid_fraction": fraction_reached(grid, grid_baseline),
          "fraction": fraction_reached(check, baseline)}
    summary[corpus] = cell
  return summary


def reached_text(variant, fraction, steps):
  """A check table cell: `fraction` (of `steps`) as a percentage."""
  if variant == "baseline":
    return BASELINE_REACHED
  if fraction is None:
    return "not within %d steps" % steps
  return "%.0f%%" % (100 * fraction)


def report(runs, checks, settings):
  """The results.md text, and the summaries (`summarize`, `check_summary`)."""
  corpora, seeds = settings["corpora"], settings["seeds"]
  total = settings["steps"]
  summary = summarize(runs, corpora, seeds, total)
  steps = range(0, total + 1, settings["eval_every"])
  start = steps[late_start(steps, total)]
  lines = [
      "# TUPE, small scale: steps to the baseline's final validation loss",
      "",
      "Command: `PYTHONPATH=. python experiments/tupe_small/run.py %s` "
      "(%d runs, %d at a time; their training time, evaluations and "
      "start-up excluded, sums to %.0f minutes)." % (
          settings["command"], len(runs), settings["jobs"],
          settings["train_seconds"] / 60.0),
      "",
      "Setup: %d layers, hidden %d, %d heads, intermediate %d; sequences of "
      "%d tokens, batch %d, %d steps; weights initialized with standard "
      "deviation %g (`initializer_range`); the original optimizer "
      "(AdamWeightDecay,"
      " peak lr %g, %d warmup steps, linear decay to 0, weight decay 0.01, "
      "clip 1.0); dropout 0.1; masks drawn anew every step (dynamic masking, "
      "15%%, 80/10/10); validation on %d held-out sequences masked once; "
      "seeds %s (a seed fixes the initialization, the order and the masks, "
      "the same for the three models)." % (
          settings["num_layers"], settings["hidden_size"],
          settings["hidden_size"] // 32, 4 * settings["hidden_size"],
          settings["seq_length"], settings["batch_size"], total,
          settings["initializer_range"], settings["learning_rate"],
          settings["warmup_steps"],
          settings["num_valid"], ", ".join(map(str, seeds))),
      "",
      "| corpus | train sequences | vocabulary |",
      "|---|---|---|",
  ]
  for corpus in corpora:
    if not summary[corpus]["seeds"]:
      continue
    run = runs[(corpus, "baseline", summary[corpus]["seeds"][0])]
    lines.append("| %s | %d | %d |" % (common.CORPORA[corpus].title,
                                       run["num_train_rows"],
                                       run["vocab_size"]))
  lines += [
      "",
      "The four fixture corpus files are four corpora: WikiText-2's test file "
      "and its valid file are two corpora of different articles, each holding "
      "out its own last 10% (neither validates on the other's training text); "
      "CLUECorpusSmall and enwik8 hold out their last 10%. "
      "pretraining_data/sample_text.txt (4 KB) is too small to be one.",
      "",
      "Fraction of the baseline's %d steps at which each model first reaches "
      "the baseline's final validation loss (same corpus and seed), and the "
      "final validation loss and accuracy, and how much the validation loss "
      "still fell from step %d to the end (the last %d%% or more of the "
      "steps: how flat the curve is): mean over the seeds (min-max):" % (
          total, start, 100 * LAST_PART),
      "",
      "| corpus | seeds | model | reaches baseline final at | final loss | "
      "final accuracy | loss drop from step %d |" % start,
      "|---|---|---|---|---|---|---|",
  ]
  for corpus in corpora:
    done = summary[corpus]["seeds"]
    for variant, (title, _) in VARIANTS.items():
      if not done:
        continue
      cell = summary[corpus][variant]
      reached = (BASELINE_REACHED if variant == "baseline" else
                 mean_spread(cell["fraction"], percent=True))
      missing = sum(f is None for f in cell["fraction"])
      if missing and variant != "baseline":
        reached += "; %d of %d seeds never" % (missing, len(done))
      lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
          common.CORPORA[corpus].title, ",".join(map(str, done)), title,
          reached, mean_spread(cell["final"]),
          mean_spread(cell["accuracy"]), mean_spread(cell["late_drop"])))
  checked = check_summary(runs, checks, corpora)
  if checked:
    factor = settings["check_factor"]
    lines += [
        "",
        "Convergence check (%.0f minutes of training): the three models of "
        "the first seed trained %d times longer (%d steps, %d warmup steps, "
        "all else the same). How much lower each ends than the same seed's "
        "run in the grid, and the fraction of each schedule at which each "
        "reaches that schedule's baseline's final loss (a fraction that "
        "stays put when the schedule doubles is one the schedule no longer "
        "decides):" % (
            settings["check_seconds"] / 60.0, factor, factor * total,
            factor * settings["warmup_steps"]),
        "",
        "| corpus | seed | model | final loss, %d steps | final loss, %d "
        "steps | lower by | reaches the baseline's final at, %d steps | "
        "the same, %d steps |" % (total, factor * total, total,
                                  factor * total),
        "|---|---|---|---|---|---|---|---|",
    ]
    for corpus, cell in checked.items():
      for variant, (title, _) in VARIANTS.items():
        if variant not in cell:
          continue
        run = cell[variant]
        reached = [reached_text(variant, run[key], steps) for key, steps in (
            ("grid_fraction", total), ("fraction", cell["steps"]))]
        lines.append("| %s | %d | %s | %.3f | %.3f | %.3f | %s | %s |" % (
            common.CORPORA[corpus].title, cell["seed"], title,
            run["grid_final"], run["final"], run["grid_final"] - run["final"],
            *reached))
    unchecked = [common.CORPORA[corpus].title for corpus in corpora
                 if set(VARIANTS) - set(checked.get(corpus, {}))]
    if unchecked:
      lines += ["", "Not in this check yet (some of its runs are not done): "
                "%s." % ", ".join(unchecked)]
  lines += ["", "![validation loss](loss_curves.png)", ""]
  return "\n".join(lines), dict(summary, convergence_check=checked)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--corpora", default=",".join(CORPORA))
  parser.add_argument("--seeds", default="1,2,3")
  parser.add_argument("--steps", type=int, default=12000)
  parser.add_argument("--warmup_steps", type=int, default=1200)
  parser.add_argument("--learning_rate", type=float, default=2e-3)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--seq_length", type=int, default=32)
  parser.add_argument("--num_valid", type=int, default=1024)
  parser.add_argument("--check_factor", type=int, default=2,
                      help="the convergence check: the three models of the "
                      "first seed are also trained this many times longer "
                      "(warmup alike) on every corpus; 0 for none")
  parser.add_argument("--report_only", action="store_true",
                      help="only write the plot and tables of the runs done "
                      "(missing seeds are left out and listed)")
  common.add_shared_flags(parser, HERE,
                          "corpus,variant,seed[,factor] of one run")
  parser.set_defaults(vocab_size=2048, eval_every=100)
  args = parser.parse_args()
  corpora = args.corpora.split(",")
  seeds = [int(s) for s in args.seeds.split(",")]
  runs_dir = os.path.join(args.output_dir, "runs")
  if args.one:
    corpus, variant, seed, *factor = args.one.split(",")
    factor = int(factor[0]) if factor else 1
    run_one(corpus, variant, int(seed), args,
            os.path.join(runs_dir, run_name(corpus, variant, int(seed),
                                            factor) + ".json"), factor)
    return
  for corpus in corpora:
    common.load_corpus(corpus, args.vocab_size)  # tokenize once, not per run
  forwarded = [a for a in sys.argv[1:] if not a.startswith("--one")]
  specs = [(corpus, variant, seed, 1) for seed in seeds for corpus in corpora
           for variant in VARIANTS]
  if args.check_factor:
    specs += [(corpus, variant, seeds[0], args.check_factor)
              for corpus in corpora for variant in VARIANTS]
  commands = []
  for spec in specs:
    name = run_name(*spec)
    commands.append((name, [sys.executable, os.path.abspath(__file__)] +
                     forwarded + ["--one=%s,%s,%d,%d" % spec],
                     os.path.join(runs_dir, name + ".json")))
  if not args.report_only:
    common.run_jobs(commands, args.jobs, os.path.join(runs_dir, "logs"))
  runs, checks = {}, {}
  for _, _, path in commands:
    if os.path.exists(path):
      with open(path) as reader:
        run = json.load(reader)
      if run.get("factor", 1) == 1:
        runs[(run["corpus"], run["variant"], run["seed"])] = run
      else:
        checks[(run["corpus"], run["variant"])] = run
  seeds = sorted(seeds)
  settings = common.settings_of(
      args, corpora=corpora, seeds=seeds,
      train_seconds=sum(r["seconds"] for r in runs.values()),
      check_seconds=sum(r["seconds"] for r in checks.values()))
  os.makedirs(args.output_dir, exist_ok=True)
  plot(runs, checks, settings,
       os.path.join(args.output_dir, "loss_curves.png"))
  text, summary = report(runs, checks, settings)
  common.write_results(
      args.output_dir,
      {"settings": settings, "summary": summary,
       "runs": {run_name(*k, 1): v for k, v in runs.items()},
       "checks": {run_name(c, v, r["seed"], r["factor"]): r
                  for (c, v), r in checks.items()}}, text)


if __name__ == "__main__":
  main()
