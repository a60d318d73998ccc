"""Mistakes a user makes with the scripts fail early, with the file and value named."""

import os

import pytest

import script_runner


@pytest.fixture()
def small(fixtures_dir):
  return fixtures_dir / "original_bert_small"


def _script_args(script, small, tmp_path, vocab, init_checkpoint):
  """Flags that get `script` past its own checks up to the tokenizer."""
  text = tmp_path / "input.txt"
  text.write_text("hello world ||| again\n")
  common = ["--bert_config_file=%s" % (small / "bert_config.json"),
            "--vocab_file=%s" % vocab, "--init_checkpoint=%s" % init_checkpoint,
            "--max_seq_length=32"]
  return {
      "run_classifier": common + [
          "--task_name=mrpc", "--do_predict",
          "--data_dir=%s" % (small.parent / "glue" / "MRPC"),
          "--output_dir=%s" % (tmp_path / "out")],
      "run_squad": common + [
          "--do_predict", "--doc_stride=8", "--max_query_length=8",
          "--predict_file=%s" % (
              small.parent / "squad" / "dev-v1.1-sample.json"),
          "--output_dir=%s" % (tmp_path / "out")],
      "extract_features": common + [
          "--input_file=%s" % text, "--output_file=%s" % (tmp_path / "f.jsonl")],
      "export_saved_model": common + [
          "--export_dir=%s" % (tmp_path / "export")],
  }[script]


SCRIPTS = ("run_classifier", "run_squad", "extract_features",
           "export_saved_model")


@pytest.mark.parametrize("script", SCRIPTS)
def test_vocabulary_larger_than_the_config_is_named(script, small, tmp_path,
                                                    fixtures_dir):
  vocab = fixtures_dir / "vocab" / "uncased_vocab.txt"
  args = _script_args(script, small, tmp_path, vocab,
                      small / "bert_model.ckpt")
  with pytest.raises(ValueError, match=r"uncased_vocab.txt has 30522 entries "
                     r"but the config's vocab_size is 413"):
    script_runner.run_main(script, *args)
  assert sorted(os.listdir(tmp_path)) == ["input.txt"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_casing_is_checked_against_the_checkpoint_name(script, small, tmp_path):
  # A released uncased checkpoint's name with --do_lower_case=False.
  released = tmp_path / "uncased_L-12_H-768_A-12" / "bert_model.ckpt"
  args = _script_args(script, small, tmp_path, small / "vocab.txt", released)
  with pytest.raises(ValueError, match=r"do_lower_case=False.*"
                     r"uncased_L-12_H-768_A-12"):
    script_runner.run_main(script, *args, "--do_lower_case=False")
