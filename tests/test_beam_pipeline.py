"""Tests of create_pretraining_data on Apache Beam (`--beam_runner`).

Beam's DirectRunner runs the real pipeline (`beam_pipeline`) in the test
process or, with `--direct_num_workers=2
--direct_running_mode=multi_processing`, in worker processes. The records
are compared with the one-process (faithful) mode's: the same features, and
statistics within the issue's bounds on wikitext2's validation text; and
with themselves: the same bytes whatever the number of workers, run after
run.
"""

import os

import pytest

from bert_tf import tokenization
from bert_tf.data import pretraining_dataset
from bert_tf.data import record_format
from bert_tf.data.pretraining import beam_pipeline
from bert_tf.data.pretraining import documents
from sentencepiece_models import train_albert_spm
from test_create_pretraining_data import _masking_statistics
from test_create_pretraining_data import bad_run
from test_create_pretraining_data import fixture_flags
from test_create_pretraining_data import run_script
from test_create_pretraining_data import run_script_process

TWO_WORKERS = ("--direct_num_workers=2 "
               "--direct_running_mode=multi_processing")


def sample_flags(data, **overrides):
  """The fixture's flags (FLAGS.txt) without its output file, overridden."""
  flags = fixture_flags(data)
  del flags["output_file"]
  flags.update(overrides)
  return flags


def run_both_modes(tmp_path, **flags):
  """Runs the one-process mode and DirectRunner in-process with `flags`.

  Returns:
    (the one-process mode's records, the Beam run's records).
  """
  run_script(output_file=tmp_path / "faithful.tfrecord", **flags)
  (tmp_path / "beam").mkdir()
  run_script(output_file=tmp_path / "beam" / "out.tfrecord",
             beam_runner="DirectRunner", **flags)
  faithful = record_format.read_records(str(tmp_path / "faithful.tfrecord"))
  beam = all_records(tmp_path / "beam")
  assert abs(len(beam) / len(faithful) - 1) < 0.25, (len(beam),
                                                    len(faithful))
  return faithful, beam


def read_shards(directory):
  """Returns {file name: records (feature dicts)} of a run's directory."""
  return {path.name: record_format.read_records(str(path))
          for path in sorted(directory.iterdir())}


def all_records(directory):
  return [r for records in read_shards(directory).values() for r in records]


@pytest.fixture(scope="module")
def data(fixtures_dir):
  return fixtures_dir / "pretraining_data"


@pytest.fixture(scope="module")
def uncased_vocab(fixtures_dir):
  return fixtures_dir / "vocab" / "uncased_vocab.txt"


@pytest.fixture(scope="module")
def wikitext_slice(fixtures_dir, tmp_path_factory):
  """The first 600 lines of wikitext2 valid (189 documents)."""
  path = tmp_path_factory.mktemp("slice") / "wikitext_slice.txt"
  with open(fixtures_dir / "corpora" / "wikitext2_valid.tokens",
            encoding="utf-8") as f:
    path.write_text("".join(line for _, line in zip(range(600), f)),
                    encoding="utf-8")
  return path


# ------------------------------------------------------------------ layout --


def test_shard_paths_are_beams_default_names():
  assert beam_pipeline.shard_paths("a/out.tfrecord,b", 3) == [
      "a/out.tfrecord-00000-of-00003", "a/out.tfrecord-00001-of-00003",
      "a/out.tfrecord-00002-of-00003", "b-00000-of-00003",
      "b-00001-of-00003", "b-00002-of-00003"]


def test_hash64_is_the_same_in_every_process():
  # blake2b of the repr, not Python's hash (salted per process for a str):
  # the value another process computed.
  assert beam_pipeline.hash64("group", 12345, ("f", 0)) == 17765847427955242257


def test_read_units_cut_large_files(tmp_path, monkeypatch):
  small, large = tmp_path / "small.txt", tmp_path / "large.txt"
  small.write_text("a b\n")
  large.write_text("word\n" * 1000)
  monkeypatch.setattr(beam_pipeline, "_PART_BYTES", 2000)
  assert beam_pipeline.plan_read_units([str(small), str(large)]) == [
      (str(small), 0, 1), (str(large), 0, 3), (str(large), 1, 3),
      (str(large), 2, 3)]


# ------------------------------------------------------ the one-process mode --


def _statistics(records, mask_id):
  """Counts of the records' tokens, masked positions and their kinds."""
  counts = _masking_statistics(records, mask_id)  # mask, keep, random
  counts["masked"] = sum(counts.values())
  counts["tokens"] = sum(sum(r["input_mask"]) for r in records)
  counts["random_next"] = sum(r["next_sentence_labels"][0] for r in records)
  return counts


@pytest.mark.parametrize("corpus,dupe_factor", [
    ("wikitext2_valid.tokens", 2),
    # Documents of 7 lines on average (wikitext2's have 2): more chunks keep
    # their own next sentence, so the random next draws weigh more.
    pytest.param("clue_small_zh.txt", 1, marks=pytest.mark.slow)])
def test_statistics_match_the_one_process_mode(fixtures_dir, uncased_vocab,
                                               tmp_path, corpus, dupe_factor):
  # Beam's groups of 500 documents (3 to 5 groups) against the whole corpus
  # of the faithful mode.
  flags = dict(input_file=fixtures_dir / "corpora" / corpus,
               vocab_file=uncased_vocab, dupe_factor=dupe_factor,
               max_seq_length=128)
  for name in ("faithful", "beam"):
    (tmp_path / name).mkdir()
  run_script_process(output_file=tmp_path / "faithful" / "out.tfrecord",
                     **flags)
  log = run_script_process(output_file=tmp_path / "beam" / "out.tfrecord",
                           beam_runner="DirectRunner", beam_group_size=500,
                           num_output_shards=2, **flags)
  assert sorted(read_shards(tmp_path / "beam")) == [
      "out.tfrecord-00000-of-00002", "out.tfrecord-00001-of-00002"]
  records = {name: all_records(tmp_path / name)
             for name in ("faithful", "beam")}
  assert "Summary: " in log and "%d instances" % len(records["beam"]) in log
  for record in records["beam"]:
    assert sorted(record) == sorted(records["faithful"][0])
    assert len(record["input_ids"]) == 128
  mask_id = tokenization.load_vocab(str(uncased_vocab))["[MASK]"]
  stats = {name: _statistics(r, mask_id) for name, r in records.items()}
  num = {name: len(r) for name, r in records.items()}
  assert num["faithful"] > 4000
  assert abs(num["beam"] / num["faithful"] - 1) < 0.05, num
  fraction = {name: {key: stats[name][key] / total for key, total in (
      ("masked", stats[name]["tokens"]), ("random_next", num[name]),
      ("mask", stats[name]["masked"]), ("keep", stats[name]["masked"]),
      ("random", stats[name]["masked"]))} for name in stats}
  assert abs(fraction["beam"]["masked"] -
             fraction["faithful"]["masked"]) < 0.01, fraction
  assert abs(fraction["beam"]["random_next"] -
             fraction["faithful"]["random_next"]) < 0.03, fraction
  for name in fraction:  # 80% [MASK], 10% kept, 10% a random word.
    for kind, p in (("mask", 0.8), ("keep", 0.1), ("random", 0.1)):
      sigma = (p * (1 - p) / stats[name]["masked"]) ** 0.5
      assert abs(fraction[name][kind] - p) < 4 * sigma, (name, fraction)


# ----------------------------------------------------------- reproducibility --


@pytest.mark.slow
def test_records_do_not_depend_on_workers_or_runs(wikitext_slice,
                                                  uncased_vocab, tmp_path):
  # Small groups (several per run) and 3 shards: 1 worker, 2 worker
  # processes, 1 worker again give the same files, byte for byte.
  flags = dict(input_file=wikitext_slice, vocab_file=uncased_vocab,
               dupe_factor=2, beam_runner="DirectRunner", beam_group_size=40,
               num_output_shards=3)
  runs = {}
  for name, options in (("one", ""), ("two", TWO_WORKERS), ("again", "")):
    (tmp_path / name).mkdir()
    run_script_process(output_file=tmp_path / name / "out.tfrecord",
                       beam_pipeline_options=options, **flags)
    runs[name] = {path.name: path.read_bytes()
                  for path in sorted((tmp_path / name).iterdir())}
  assert sorted(runs["one"]) == ["out.tfrecord-0000%d-of-00003" % i
                                 for i in range(3)]
  assert runs["two"] == runs["one"]
  assert runs["again"] == runs["one"]
  shards = read_shards(tmp_path / "one")
  assert all(len(records) > 50 for records in shards.values())


def test_a_run_is_reproducible_in_process(data, tmp_path):
  # The sample text (3 documents), in-process runs: the same records twice,
  # and the glob run_pretraining reads finds both shards.
  flags = sample_flags(data, beam_runner="DirectRunner", num_output_shards=2,
                       beam_group_size=2)
  contents = []
  for name in ("first", "second"):
    (tmp_path / name).mkdir()
    output = tmp_path / name / "out.tfrecord"
    run_script(output_file=output, **flags)
    contents.append({p.name: p.read_bytes()
                     for p in sorted((tmp_path / name).iterdir())})
  assert contents[0] == contents[1]
  assert pretraining_dataset.expand_input_patterns(
      str(tmp_path / "first" / "out.tfrecord-*")) == [
          str(tmp_path / "first" / ("out.tfrecord-0000%d-of-00002" % i))
          for i in range(2)]


# ---------------------------------------------------- every scheme and task --


@pytest.mark.parametrize("masking,sentence_task,extra", [
    ("token", "nsp", {}), ("whole_word", "sop", {}), ("ngram", "none", {}),
    ("span", "nsp", {}), ("ngram", "sop", {"do_permutation": True})])
def test_every_masking_and_sentence_task(data, tmp_path, masking,
                                         sentence_task, extra):
  # The records have the features of the one-process mode's for the same
  # flags, and their masked positions follow the scheme's count.
  faithful, beam = run_both_modes(tmp_path, **sample_flags(
      data, masking=masking, sentence_task=sentence_task, dupe_factor=2,
      **extra))
  names = sorted(faithful[0])
  assert ("next_sentence_labels" in names) == (sentence_task != "none")
  assert all((name in names) == (masking == "span")
             for name in record_format.SPAN_BOUNDARY_FEATURE_NAMES)
  for record in beam:
    assert sorted(record) == names
    n = sum(record["input_mask"])
    assert len(record["masked_lm_weights"]) == len(
        faithful[0]["masked_lm_weights"])  # 40 with the permutation
    num_masked = int(sum(record["masked_lm_weights"]))
    assert 1 <= num_masked <= len(record["masked_lm_weights"])
    positions = record["masked_lm_positions"][:num_masked]
    assert positions == sorted(positions) and max(positions) < n
    if sentence_task == "none":
      assert set(record["segment_ids"][:n]) == {0}


def test_sentencepiece_model(data, tmp_path):
  spm_model = train_albert_spm(data / "sample_text.txt", tmp_path / "spm")
  faithful, beam = run_both_modes(
      tmp_path, input_file=data / "sample_text.txt", spm_model_file=spm_model,
      masking="ngram", sentence_task="sop", dupe_factor=2, max_seq_length=64,
      max_predictions_per_seq=10)
  vocab_size = tokenization.FullTokenizer(
      None, True, spm_model_file=spm_model).sp_model.get_piece_size()
  for record in beam:
    assert sorted(record) == sorted(faithful[0])
    assert len(record["input_ids"]) == 64
    assert max(record["input_ids"]) < vocab_size


# --------------------------------------------------------------- bad flags --


def test_beam_flags_without_a_runner_fail(data, tmp_path):
  assert "--num_output_shards applies to --beam_runner only" in bad_run(
      data, tmp_path, num_output_shards=2)


def test_num_workers_with_a_runner_fails(data, tmp_path):
  assert "--num_workers=2 contradicts --beam_runner=DirectRunner" in bad_run(
      data, tmp_path, num_workers=2, beam_runner="DirectRunner")


def test_a_runner_inside_the_pipeline_options_fails(data, tmp_path):
  message = bad_run(data, tmp_path, beam_runner="DirectRunner",
                    beam_pipeline_options="--runner=DataflowRunner")
  assert "names a runner: give it as --beam_runner" in message
  assert not os.listdir(tmp_path) or all(
      not name.startswith("out") for name in os.listdir(tmp_path))


def test_no_document_makes_an_instance(data, tmp_path):
  path = tmp_path / "blank.txt"
  path.write_text("\n   \n\t\n\x00\x01\n\n")
  message = bad_run(data, tmp_path, input_file=str(path),
                    beam_runner="DirectRunner", num_output_shards=2)
  assert "no document long enough to make an instance" in message
  assert sorted(p.name for p in tmp_path.iterdir()) == ["blank.txt"]


# ------------------------------------------- SentencePiece beside Beam's pin --


@pytest.mark.parametrize("options", [
    {},
    {"split_by_whitespace": False, "treat_whitespace_as_suffix": True,
     "add_dummy_prefix": False, "remove_extra_whitespaces": False}])
def test_model_fields_read_without_the_generated_module(data, tmp_path,
                                                        options):
  # `documents._splits_on_spaces` reads four fields of the model through a
  # descriptor of its own: sentencepiece 0.2.3's generated module needs the
  # protobuf 7.36 runtime, Beam 2.78 pins protobuf < 7. Where the module
  # loads, both read the same values.
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top
  spm.SentencePieceTrainer.train(
      input=str(data / "sample_text.txt"), model_prefix=str(tmp_path / "m"),
      vocab_size=300, minloglevel=2, **options)
  serialized = (tmp_path / "m.model").read_bytes()
  proto = documents._model_proto_class().FromString(serialized)
  got = {name: getattr(getattr(proto, spec), name) for spec, name in (
      ("trainer_spec", "split_by_whitespace"),
      ("trainer_spec", "treat_whitespace_as_suffix"),
      ("normalizer_spec", "add_dummy_prefix"),
      ("normalizer_spec", "remove_extra_whitespaces"))}
  defaults = {"split_by_whitespace": True, "treat_whitespace_as_suffix": False,
              "add_dummy_prefix": True, "remove_extra_whitespaces": True}
  assert got == dict(defaults, **options)
  try:
    from sentencepiece import sentencepiece_model_pb2  # pylint: disable=g-import-not-at-top
  except Exception:  # pylint: disable=broad-except
    return  # protobuf < 7.36: the generated module does not load.
  generated = sentencepiece_model_pb2.ModelProto.FromString(serialized)
  assert got == {name: getattr(getattr(generated, spec), name)
                 for spec, name in (
                     ("trainer_spec", "split_by_whitespace"),
                     ("trainer_spec", "treat_whitespace_as_suffix"),
                     ("normalizer_spec", "add_dummy_prefix"),
                     ("normalizer_spec", "remove_extra_whitespaces"))}
