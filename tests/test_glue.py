"""GLUE / XNLI processors, features and TFRecords against the real files."""

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import tokenization
from bert_tf.data import glue


@pytest.fixture(scope="module")
def uncased_tokenizer(fixtures_dir):
  return tokenization.FullTokenizer(
      str(fixtures_dir / "vocab" / "uncased_vocab.txt"), do_lower_case=True)


def _as_tuple(example):
  return (example.guid, example.text_a, example.text_b, example.label)


def test_mrpc_matches_the_original_reader(fixtures_dir):
  processor = glue.get_processor("MRPC")
  data_dir = str(fixtures_dir / "glue" / "MRPC")
  train = processor.get_train_examples(data_dir)
  dev = processor.get_dev_examples(data_dir)
  test = processor.get_test_examples(data_dir)
  assert (len(train), len(dev), len(test)) == (3668, 408, 1725)
  assert _as_tuple(train[0]) == (
      "train-1",
      "Amrozi accused his brother, whom he called \"the witness\", of "
      "deliberately distorting his evidence.",
      "Referring to him as only \"the witness\", Amrozi accused his brother "
      "of deliberately distorting his evidence.", "1")
  assert train[-1].guid == "train-3668"
  # Quotes are plain characters (no csv quoting), as the original.
  assert dev[0].text_b == ("\"The foodservice pie business does not fit our "
                           "long-term growth strategy.")
  assert test[0].guid == "test-1" and test[0].label == "0"
  assert test[0].text_a.startswith("PCCW's chief operating officer")
  assert sum(e.label == "1" for e in train) == 2474
  assert processor.get_labels() == ["0", "1"]


def test_cola_has_no_header_except_in_test(fixtures_dir):
  processor = glue.get_processor("cola")
  data_dir = str(fixtures_dir / "glue" / "CoLA")
  train = processor.get_train_examples(data_dir)
  dev = processor.get_dev_examples(data_dir)
  test = processor.get_test_examples(data_dir)
  assert (len(train), len(dev), len(test)) == (8551, 527, 1)
  assert _as_tuple(train[0]) == (
      "train-0", "Our friends won't buy this analysis, let alone the next one "
      "we propose.", None, "1")
  assert _as_tuple(dev[0]) == (
      "dev-0", "The sailors rode the breeze clear of the rocks.", None, "1")
  assert _as_tuple(test[0]) == ("test-1", "Bill whistled past the house.",
                                None, "0")


def test_mnli_guids_from_the_index_column(fixtures_dir):
  processor = glue.get_processor("Mnli")
  data_dir = str(fixtures_dir / "glue" / "MNLI")
  train = processor.get_train_examples(data_dir)
  dev = processor.get_dev_examples(data_dir)
  test = processor.get_test_examples(data_dir)
  assert [e.guid for e in train] == ["train-0", "train-1", "train-2"]
  assert _as_tuple(train[0]) == (
      "train-0", "Conceptually cream skimming has two basic dimensions - "
      "product and geography.",
      "Product and geography are what make cream skimming work. ", "neutral")
  assert _as_tuple(dev[0]) == ("dev_matched-0",
                               "The new rights are nice enough",
                               "Everyone really likes the newest benefits ",
                               "neutral")
  assert test[0].guid == "test-0" and test[0].label == "contradiction"
  assert processor.get_labels() == ["contradiction", "entailment", "neutral"]


def test_xnli_reads_chinese_rows_only(fixtures_dir):
  processor = glue.get_processor("XNLI")
  data_dir = str(fixtures_dir / "glue" / "XNLI")
  train = processor.get_train_examples(data_dir)
  dev = processor.get_dev_examples(data_dir)
  assert len(train) == 4 and train[0].guid == "train-1"
  assert train[0].text_a == ("从 概念 上 看 , 奶油 收入 有 两 个 基本 方面 产品 "
                             "和 地理 .")
  assert train[0].label == "neutral"
  # 15 languages, one pair each; only zh (line 16) is kept.
  assert [_as_tuple(e) for e in dev] == [
      ("dev-15", "他说，妈妈，我回来了。", "校车把他放下后，他立即给他妈妈打了电话。",
       "neutral")]
  assert all(e.label in processor.get_labels() for e in train)


def test_xnli_contradictory_becomes_contradiction(tmp_path):
  (tmp_path / "multinli").mkdir()
  (tmp_path / "multinli" / "multinli.train.zh.tsv").write_text(
      "premise\thypo\tlabel\n甲\t乙\tcontradictory\n", encoding="utf-8")
  examples = glue.XnliProcessor().get_train_examples(str(tmp_path))
  assert _as_tuple(examples[0]) == ("train-1", "甲", "乙", "contradiction")


@pytest.mark.parametrize("task,files,expected_train,expected_test", [
    ("SST-2", {"train.tsv": "sentence\tlabel\nit 's a charming journey \t1\n",
               "test.tsv": "index\tsentence\n0\tuneasy mishmash .\n"},
     ("train-1", "it 's a charming journey ", None, "1"),
     ("test-1", "uneasy mishmash .", None, "0")),
    ("qqp", {"train.tsv": "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"
                          "\n133273\t213221\t213222\tHow?\tWhy?\t0\n",
             "test.tsv": "id\tquestion1\tquestion2\n7\tA?\tB?\n"},
     ("train-133273", "How?", "Why?", "0"), ("test-7", "A?", "B?", "0")),
    ("QNLI", {"train.tsv": "index\tquestion\tsentence\tlabel\n"
                           "0\tWhen?\tIn 1900.\tentailment\n",
              "test.tsv": "index\tquestion\tsentence\n3\tWho?\tHe.\n"},
     ("train-0", "When?", "In 1900.", "entailment"),
     ("test-3", "Who?", "He.", "entailment")),
    ("rte", {"train.tsv": "index\tsentence1\tsentence2\tlabel\n"
                          "0\tA dog runs.\tAn animal runs.\tnot_entailment\n",
             "test.tsv": "index\tsentence1\tsentence2\n0\tX.\tY.\n"},
     ("train-0", "A dog runs.", "An animal runs.", "not_entailment"),
     ("test-0", "X.", "Y.", "entailment")),
    ("WNLI", {"train.tsv": "index\tsentence1\tsentence2\tlabel\n"
                           "0\tI stuck a pin.\tI stuck the pin.\t1\n",
              "test.tsv": "index\tsentence1\tsentence2\n0\tX.\tY.\n"},
     ("train-0", "I stuck a pin.", "I stuck the pin.", "1"),
     ("test-0", "X.", "Y.", "0")),
    ("sts-b", {"train.tsv": "index\tgenre\tfilename\tyear\told_index\t"
                            "source1\tsource2\tsentence1\tsentence2\tscore\n"
                            "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\t"
                            "none\tA plane is taking off.\tAn air plane is "
                            "taking off.\t5.000\n",
               "test.tsv": "index\tgenre\tfilename\tyear\told_index\tsource1"
                           "\tsource2\tsentence1\tsentence2\n0\tx\tx\tx\tx\tx"
                           "\tx\tA girl sings.\tA woman sings.\n"},
     ("train-0", "A plane is taking off.", "An air plane is taking off.",
      5.0), ("test-0", "A girl sings.", "A woman sings.", 0.0)),
])
def test_glue_layout_tasks(tmp_path, task, files, expected_train,
                           expected_test):
  for name, text in files.items():
    (tmp_path / name).write_text(text, encoding="utf-8")
  processor = glue.get_processor(task)
  assert _as_tuple(processor.get_train_examples(str(tmp_path))[0]) == (
      expected_train)
  assert _as_tuple(processor.get_test_examples(str(tmp_path))[0]) == (
      expected_test)
  assert processor.is_regression == (task == "sts-b")


def test_unknown_task_lists_the_known_ones():
  with pytest.raises(ValueError) as e:
    glue.get_processor("squad")
  assert str(e.value) == ("Task not found: squad (known tasks: cola, mnli, "
                          "mrpc, xnli, sst-2, qqp, qnli, rte, wnli, sts-b)")


def test_missing_columns_name_the_file_and_line(tmp_path):
  path = tmp_path / "train.tsv"
  path.write_text("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
                  "1\t1\t2\tFirst.\tSecond.\n"
                  "0\t3\t4\tonly four columns\n", encoding="utf-8")
  with pytest.raises(ValueError) as e:
    glue.get_processor("mrpc").get_train_examples(str(tmp_path))
  assert str(e.value) == (
      "%s, line 3: expected at least 5 tab-separated columns, found 4: "
      "'0\\t3\\t4\\tonly four columns'" % path)


def test_bad_regression_label_names_the_line(tmp_path):
  (tmp_path / "train.tsv").write_text(
      "h\n0\tg\tf\ty\to\ts\ts\tA.\tB.\tfive\n", encoding="utf-8")
  with pytest.raises(ValueError, match=r"train.tsv, line 2: expected a float "
                     r"label, found 'five'"):
    glue.get_processor("sts-b").get_train_examples(str(tmp_path))


def test_missing_file_is_named(tmp_path):
  with pytest.raises(ValueError, match="Data file not found: .*dev.tsv"):
    glue.get_processor("mrpc").get_dev_examples(str(tmp_path))


def test_convert_single_example_single_sentence(fixtures_dir,
                                                uncased_tokenizer):
  example = glue.get_processor("cola").get_train_examples(
      str(fixtures_dir / "glue" / "CoLA"))[0]
  feature = glue.convert_single_example(0, example, ["0", "1"], 24,
                                        uncased_tokenizer)
  assert feature.input_ids == [
      101, 2256, 2814, 2180, 1005, 1056, 4965, 2023, 4106, 1010, 2292, 2894,
      1996, 2279, 2028, 2057, 16599, 1012, 102, 0, 0, 0, 0, 0]
  assert feature.input_mask == [1] * 19 + [0] * 5
  assert feature.segment_ids == [0] * 24
  assert feature.label_id == 1 and feature.is_real_example


def test_convert_single_example_truncates_the_longer_text(fixtures_dir,
                                                          uncased_tokenizer):
  example = glue.get_processor("mrpc").get_train_examples(
      str(fixtures_dir / "glue" / "MRPC"))[0]
  feature = glue.convert_single_example(0, example, ["0", "1"], 20,
                                        uncased_tokenizer)
  tokens = uncased_tokenizer.convert_ids_to_tokens(feature.input_ids)
  # 23 + 24 tokens truncated to 17: one at a time from the longer (b on ties).
  assert tokens == ["[CLS]", "am", "##ro", "##zi", "accused", "his",
                    "brother", ",", "whom", "he", "[SEP]", "referring", "to",
                    "him", "as", "only", "\"", "the", "witness", "[SEP]"]
  assert feature.segment_ids == [0] * 11 + [1] * 9
  assert feature.input_mask == [1] * 20


def test_unknown_label_names_the_example(uncased_tokenizer):
  example = glue.InputExample("dev-7", "a", None, "2")
  with pytest.raises(ValueError, match=r"Example dev-7 has label '2', "
                     r"expected one of \['0', '1'\]"):
    glue.convert_single_example(0, example, ["0", "1"], 8, uncased_tokenizer)


def test_records_with_padding_round_trip(fixtures_dir, uncased_tokenizer,
                                         tmp_path):
  examples = glue.get_processor("mrpc").get_dev_examples(
      str(fixtures_dir / "glue" / "MRPC"))[:10]
  padded = glue.pad_examples(examples, 4)
  assert len(padded) == 12 and len(examples) == 10
  assert isinstance(padded[-1], glue.PaddingInputExample)
  path = str(tmp_path / "eval.tf_record")
  glue.file_based_convert_examples_to_features(padded, ["0", "1"], 32,
                                               uncased_tokenizer, path)
  raw = tf.train.Example.FromString(
      next(iter(tf.data.TFRecordDataset(path))).numpy())
  assert sorted(raw.features.feature) == [
      "input_ids", "input_mask", "is_real_example", "label_ids",
      "segment_ids"]
  assert list(raw.features.feature["label_ids"].int64_list.value) == [1]
  batches = list(glue.file_based_dataset(path, 32, 4, is_training=False,
                                         drop_remainder=True))
  assert len(batches) == 3
  is_real = np.concatenate([b["is_real_example"].numpy() for b in batches])
  labels = np.concatenate([b["label_ids"].numpy() for b in batches])
  assert is_real.tolist() == [1] * 10 + [0, 0]
  assert labels.tolist() == [int(e.label) for e in examples] + [0, 0]
  assert batches[0]["input_ids"].dtype == tf.int32
  assert batches[0]["input_ids"].shape == (4, 32)
  assert batches[2]["input_mask"].numpy()[2:].sum() == 0


def test_regression_records_hold_float_labels(uncased_tokenizer, tmp_path):
  examples = [glue.InputExample("train-0", "a plane", "an air plane", 3.8)]
  path = str(tmp_path / "train.tf_record")
  glue.file_based_convert_examples_to_features(
      examples, [None], 8, uncased_tokenizer, path, is_regression=True)
  batch = next(iter(glue.file_based_dataset(path, 8, 1, is_training=False,
                                            drop_remainder=False,
                                            is_regression=True)))
  assert batch["label_ids"].dtype == tf.float32
  assert batch["label_ids"].numpy().tolist() == [pytest.approx(3.8)]
