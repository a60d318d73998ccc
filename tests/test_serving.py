"""SavedModel export: ids, tf.Example and raw-text signatures, loaded in a fresh process."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import checkpoints
from bert_tf import serving
from bert_tf import tokenization
from bert_tf.data import sentence_pairs
from bert_tf.modeling import BertConfig
from sentencepiece_models import train_albert_spm
import script_runner

SEQ = 24
TEXT_A = ["The rain had only ceased", "", "Hypatia's chunk, red supply!",
          "with the gray streaks of morning " * 6]
TEXT_B = ["with the gray streaks of morning", "red", "", "the settlement " * 9]


def _original_loop(len_a, len_b, budget):
  a, b = list(range(len_a)), list(range(len_b))
  sentence_pairs.truncate_seq_pair(a, b, budget)
  return len(a), len(b)


def _serve_in_fresh_process(export_dir, inputs, tmp_path):
  """Runs `_FRESH_PROCESS` on `inputs` (a dict of arrays); returns its npz."""
  np.savez(tmp_path / "inputs.npz", **inputs)
  script = tmp_path / "serve.py"
  script.write_text(_FRESH_PROCESS)
  result = subprocess.run(
      [sys.executable, str(script), export_dir, str(tmp_path / "inputs.npz"),
       str(tmp_path / "out.npz")], capture_output=True, text=True, timeout=300,
      cwd=tmp_path, env=dict(os.environ, PYTHONPATH=""))
  assert result.returncode == 0, result.stderr[-3000:]
  return np.load(tmp_path / "out.npz", allow_pickle=True)


def test_truncation_lengths_equal_the_original_loop():
  cases = [(a, b, m) for a in range(13) for b in range(13) for m in range(16)]
  kept_a, kept_b = serving.truncated_pair_lengths(
      tf.constant([c[0] for c in cases]), tf.constant([c[1] for c in cases]),
      tf.constant([c[2] for c in cases]))
  expected = [_original_loop(*c) for c in cases]
  assert list(zip(kept_a.numpy(), kept_b.numpy())) == expected


@pytest.fixture(scope="module")
def small(fixtures_dir):
  root = fixtures_dir / "original_bert_small"
  return (BertConfig.from_json_file(str(root / "bert_config.json")),
          str(root / "bert_model.ckpt"), str(root / "vocab.txt"))


def _packed(vocab_file, text_a=TEXT_A, text_b=TEXT_B, max_seq_length=SEQ):
  """The training-time packing of text_a/text_b with FullTokenizer."""
  tokenizer = tokenization.FullTokenizer(vocab_file, True)
  packed = [sentence_pairs.pack_tokens(
      tokenizer.tokenize(a), tokenizer.tokenize(b) if b else None,
      max_seq_length, tokenizer.convert_tokens_to_ids)
            for a, b in zip(text_a, text_b)]
  return {name: np.array([getattr(p, name) for p in packed], np.int32)
          for name in ("input_ids", "input_mask", "segment_ids")}


def test_in_graph_packing_equals_training_packing(small):
  _, _, vocab_file = small
  from bert_tf.text import FastBertTokenizer
  tokenizer = FastBertTokenizer(vocab_file, True)
  got = serving.pack_ids(tokenizer.tokenize(tf.constant(TEXT_A)),
                         tokenizer.tokenize(tf.constant(TEXT_B)), SEQ,
                         tokenizer.cls_id, tokenizer.sep_id)
  for name, expected in _packed(vocab_file).items():
    np.testing.assert_array_equal(got[name], expected, err_msg=name)


# Short texts (at most 12 packed tokens) for a 40-token export.
SHORT_A = ["The rain", "red supply!", "Hypatia's chunk", "with"]
SHORT_B = ["had only ceased", "", "the gray streaks of morning", ""]


def test_in_graph_packing_pads_to_the_longest_text(small):
  _, _, vocab_file = small
  from bert_tf.text import FastBertTokenizer
  tokenizer = FastBertTokenizer(vocab_file, True)
  fixed = _packed(vocab_file, SHORT_A, SHORT_B, 40)
  longest = int(fixed["input_mask"].sum(axis=1).max())
  for multiple, length in ((8, 16), (1, longest), (64, 40)):
    got = serving.pack_ids(tokenizer.tokenize(tf.constant(SHORT_A)),
                           tokenizer.tokenize(tf.constant(SHORT_B)), 40,
                           tokenizer.cls_id, tokenizer.sep_id,
                           pad_to_multiple=multiple)
    for name, expected in fixed.items():
      np.testing.assert_array_equal(got[name], expected[:, :length],
                                    err_msg="%s %d" % (name, multiple))
  assert longest == 12
  assert not fixed["input_mask"][:, 16:].any()


_SERVE_TEXT_REQUESTS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # registers the tokenizer ops
    export_dirs, requests_file, out_file = sys.argv[1:]
    requests = json.load(open(requests_file))
    results = {}
    for export_dir in export_dirs.split(","):
      serve_text = tf.saved_model.load(export_dir).signatures["serve_text"]
      for i, (text_a, text_b) in enumerate(requests):
        results["%s/%d" % (export_dir, i)] = serve_text(
            text_a=tf.constant(text_a),
            text_b=tf.constant(text_b))["probabilities"].numpy()
    np.savez(out_file, **results)
""")


def test_serve_text_padded_to_the_longest_text_gives_the_same_outputs(
    small, tmp_path):
  """Exports padded to the request's longest text and to max_seq_length."""
  config, ckpt, vocab_file = small
  model = serving.build_model(config, "classifier", num_labels=3)
  checkpoints.load_checkpoint(model, ckpt)
  model.head.output_weights.assign(
      np.random.RandomState(0).normal(0, 0.5, (3, 48)).astype("f"))
  exports = []
  for longest in (True, False):
    exports.append(str(tmp_path / ("longest" if longest else "fixed")))
    serving.export(config, None, vocab_file, True, 40, "classifier",
                   exports[-1], num_labels=3, model=model,
                   signatures=["serve_text"], pad_text_to_longest=longest)
  # Batch 1 (each pair alone), the short batch, and short with long pairs.
  requests = [([a], [b]) for a, b in zip(SHORT_A, SHORT_B)] + [
      (SHORT_A, SHORT_B), (SHORT_A + TEXT_A, SHORT_B + TEXT_B)]
  (tmp_path / "requests.json").write_text(json.dumps(requests))
  result = subprocess.run(
      [sys.executable, "-c", _SERVE_TEXT_REQUESTS, ",".join(exports),
       str(tmp_path / "requests.json"), str(tmp_path / "out.npz")],
      capture_output=True, text=True, timeout=300, cwd=tmp_path,
      env=dict(os.environ, PYTHONPATH=""))
  assert result.returncode == 0, result.stderr[-3000:]
  served = np.load(tmp_path / "out.npz")
  for i, (text_a, text_b) in enumerate(requests):
    expected = model(_packed(vocab_file, text_a, text_b, 40),
                     training=False)["probabilities"]
    for export_dir in exports:
      np.testing.assert_allclose(served["%s/%d" % (export_dir, i)], expected,
                                 atol=1e-5, err_msg="%s %d" % (export_dir, i))


_FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # registers the tokenizer ops
    export_dir, inputs_file, out_file = sys.argv[1:]
    loaded = tf.saved_model.load(export_dir)
    inputs = np.load(inputs_file, allow_pickle=True)
    results = {}
    default = loaded.signatures["serving_default"]
    names = [k for k in default.structured_input_signature[1]]
    for key, value in default(**{n: tf.constant(inputs[n]) for n in names}).items():
      results["ids/" + key] = value.numpy()
    extra = {n: tf.constant(inputs[n]) for n in names
             if n == "masked_lm_positions"}
    text = loaded.signatures["serve_text"](
        text_a=tf.constant(json.loads(str(inputs["text_a"]))),
        text_b=tf.constant(json.loads(str(inputs["text_b"]))), **extra)
    for key, value in text.items():
      results["text/" + key] = value.numpy()
    examples = loaded.signatures["serve_examples"](
        examples=tf.constant(list(inputs["examples"])))
    for key, value in examples.items():
      results["examples/" + key] = value.numpy()
    results["bert_tf_imported"] = np.array(
        any(m.startswith("bert_tf") for m in sys.modules))
    np.savez(out_file, **results)
""")


def _examples(features):
  """Serializes the packed features as fine-tuning tf.Examples."""
  out = []
  for i in range(len(features["input_ids"])):
    feature = {name: tf.train.Feature(int64_list=tf.train.Int64List(
        value=features[name][i])) for name in features}
    out.append(tf.train.Example(features=tf.train.Features(
        feature=feature)).SerializeToString())
  return out


@pytest.mark.parametrize("model_type", [
    "classifier", pytest.param("pretraining", marks=pytest.mark.slow)])
def test_export_serves_ids_examples_and_text_in_a_fresh_process(
    small, tmp_path, model_type):
  config, ckpt, vocab_file = small
  model = serving.build_model(config, model_type, num_labels=3)
  checkpoints.load_checkpoint(model, ckpt)
  if model_type == "classifier":
    model.head.output_weights.assign(
        np.random.RandomState(0).normal(0, 0.5, (3, 48)).astype("f"))
  export_dir = str(tmp_path / "export")
  serving.export(config, None, vocab_file, True, SEQ, model_type, export_dir,
                 num_labels=3, max_predictions_per_seq=3, model=model)
  assert sorted(os.listdir(tmp_path)) == ["export"]
  assert os.listdir(os.path.join(export_dir, "assets")) == ["vocab.txt"]

  features = _packed(vocab_file)
  extra = {}
  if model_type == "pretraining":
    extra["masked_lm_positions"] = np.tile([[1, 2, 3]], [4, 1]).astype(np.int32)
  inputs = dict(features, text_a=json.dumps(TEXT_A), text_b=json.dumps(TEXT_B),
                examples=np.array(_examples(dict(features, **extra)),
                                  dtype=object), **extra)
  served = _serve_in_fresh_process(export_dir, inputs, tmp_path)
  assert not served["bert_tf_imported"]

  expected = model(dict(features, **extra), training=False)
  for name in serving.OUTPUTS[model_type]:
    want = np.asarray(expected[name])
    if name == "mlm_log_probs":
      want = want.reshape([4, 3, -1])
    for kind in ("ids", "text", "examples"):
      np.testing.assert_allclose(served["%s/%s" % (kind, name)], want,
                                 atol=1e-5, err_msg="%s/%s" % (kind, name))

  shown = subprocess.run(
      [os.path.join(os.path.dirname(sys.executable), "saved_model_cli"), "show",
       "--all", "--dir", export_dir], capture_output=True, text=True,
      timeout=300).stdout
  for signature in ("serving_default", "serve_text", "serve_examples"):
    assert "signature_def['%s']" % signature in shown
  for name in ("input_ids", "text_a", "text_b", "examples") + tuple(
      serving.OUTPUTS[model_type]):
    assert "['%s']" % name in shown


def test_signature_rejects_wrong_dtype_and_rank(small, tmp_path):
  config, ckpt, vocab_file = small
  export_dir = str(tmp_path / "export")
  serving.export(config, ckpt, vocab_file, True, SEQ, "encoder", export_dir)
  loaded = tf.saved_model.load(export_dir)
  default = loaded.signatures["serving_default"]
  ids = tf.constant([[2, 5, 3]], tf.int32)
  out = default(input_ids=ids, input_mask=tf.ones_like(ids),
                segment_ids=tf.zeros_like(ids))
  assert out["sequence_output"].shape == (1, 3, 48)
  # The signature wrapper refuses the input before any op of the model runs.
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="expected to be a int32 tensor but is a float"):
    default(input_ids=tf.cast(ids, tf.float32), input_mask=tf.ones_like(ids),
            segment_ids=tf.zeros_like(ids))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r"Shape of tensor input_ids \[3\] is not "
                     r"compatible with expected shape \[\?,\?\]"):
    default(input_ids=ids[0], input_mask=tf.ones_like(ids),
            segment_ids=tf.zeros_like(ids))
  empty = loaded.signatures["serve_text"](text_a=tf.constant([""]),
                                          text_b=tf.constant([""]))
  assert empty["sequence_output"].shape == (1, SEQ, 48)


def test_export_refuses_a_non_empty_directory(small, tmp_path):
  config, ckpt, vocab_file = small
  (tmp_path / "export").mkdir()
  (tmp_path / "export" / "keep.txt").write_text("x")
  with pytest.raises(ValueError, match=r"--export_dir .*export is not empty; "
                     r"pass --overwrite"):
    serving.export(config, ckpt, vocab_file, True, SEQ, "encoder",
                   str(tmp_path / "export"))
  assert (tmp_path / "export" / "keep.txt").read_text() == "x"
  with pytest.raises(ValueError, match=r"Cannot use sequence length 41 because "
                     r"the BERT model was only trained up to sequence length 40"):
    serving.export(config, ckpt, vocab_file, True, 41, "encoder",
                   str(tmp_path / "other"))


@pytest.mark.slow
def test_albert_export_with_sentencepiece_serves_text_in_a_fresh_process(
    fixtures_dir, tmp_path):
  spm_model = train_albert_spm(
      fixtures_dir / "pretraining_data" / "sample_text.txt",
      tmp_path / "albert")
  config = BertConfig.from_json_file(
      str(fixtures_dir / "original_albert_small" / "albert_config.json"))
  config.vocab_size = 400
  model = serving.build_model(config, "encoder")
  tokenizer = tokenization.FullTokenizer(None, True, spm_model_file=spm_model)
  packed = [sentence_pairs.pack_tokens(
      tokenizer.tokenize(a), tokenizer.tokenize(b) if b else None, SEQ,
      tokenizer.convert_tokens_to_ids) for a, b in zip(TEXT_A, TEXT_B)]
  features = {name: np.array([getattr(p, name) for p in packed], np.int32)
              for name in ("input_ids", "input_mask", "segment_ids")}
  expected = model(features, training=False)
  export_dir = str(tmp_path / "export")
  serving.export(config, None, None, True, SEQ, "encoder", export_dir,
                 model=model, spm_model_file=spm_model)
  assert os.listdir(os.path.join(export_dir, "assets")) == ["albert.model"]

  inputs = dict(features, text_a=json.dumps(TEXT_A), text_b=json.dumps(TEXT_B),
                examples=np.array(_examples(features), dtype=object))
  served = _serve_in_fresh_process(export_dir, inputs, tmp_path)
  for name in serving.OUTPUTS["encoder"]:
    for kind in ("ids", "text", "examples"):
      np.testing.assert_allclose(served["%s/%s" % (kind, name)],
                                 np.asarray(expected[name]), atol=1e-5,
                                 err_msg="%s/%s" % (kind, name))
  with pytest.raises(ValueError, match="--vocab_file or --spm_model_file"):
    serving.export(config, None, None, True, SEQ, "encoder",
                   str(tmp_path / "other"), model=model)


def _op_types(export_dir):
  """Every op type in a SavedModel's graph and function library."""
  from tensorflow.core.protobuf import saved_model_pb2
  proto = saved_model_pb2.SavedModel()
  with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
    proto.ParseFromString(f.read())
  graph = proto.meta_graphs[0].graph_def
  ops = {node.op for node in graph.node}
  for function in graph.library.function:
    ops.update(node.op for node in function.node_def)
  return ops


def test_export_without_serve_text_runs_in_saved_model_cli(small, tmp_path):
  config, ckpt, vocab_file = small
  export_dir = str(tmp_path / "export")
  script_runner.run_main(
      "export_saved_model", "--bert_config_file=%s" % (
          pathlib.Path(ckpt).parent / "bert_config.json"),
      "--init_checkpoint=" + ckpt, "--model_type=encoder",
      "--export_dir=" + export_dir, "--max_seq_length=%d" % SEQ,
      "--signatures=serving_default,serve_examples")
  ops = _op_types(export_dir)
  assert "StatefulPartitionedCall" in ops
  assert not [op for op in ops if "Tokenize" in op or "Wordpiece" in op]
  assert not os.path.exists(os.path.join(export_dir, "assets", "vocab.txt"))

  features = _packed(vocab_file)
  for name, value in features.items():
    np.save(tmp_path / (name + ".npy"), value)
  result = subprocess.run(
      [os.path.join(os.path.dirname(sys.executable), "saved_model_cli"), "run",
       "--dir", export_dir, "--tag_set", "serve", "--signature_def",
       "serving_default", "--inputs", ";".join(
           "%s=%s" % (n, tmp_path / (n + ".npy")) for n in features),
       "--outdir", str(tmp_path / "out")], capture_output=True, text=True,
      timeout=300, env=dict(os.environ, PYTHONPATH=""))
  assert result.returncode == 0, result.stderr[-3000:]
  model = serving.build_model(config, "encoder")
  checkpoints.load_checkpoint(model, ckpt)
  expected = model(features, training=False)
  for name in serving.OUTPUTS["encoder"]:
    np.testing.assert_allclose(np.load(tmp_path / "out" / (name + ".npy")),
                               expected[name], atol=1e-5, err_msg=name)


def test_signatures_flag_is_checked(small, tmp_path):
  config, ckpt, _ = small
  with pytest.raises(ValueError, match=r"--signatures must be .* found "
                     r"'serving_default,serve_txt'"):
    serving.export(config, ckpt, None, True, SEQ, "encoder",
                   str(tmp_path / "e"), signatures="serving_default,serve_txt")
  with pytest.raises(ValueError, match=r"required for the raw-text signature "
                     r"serve_text"):
    serving.export(config, ckpt, None, True, SEQ, "encoder",
                   str(tmp_path / "e"), signatures=["serve_text"])
  assert not os.path.exists(tmp_path / "e")


def test_loaded_export_answers_eight_threads_as_one(small, tmp_path):
  import concurrent.futures
  import tensorflow_text  # noqa: F401  (serve_text's ops)
  config, ckpt, vocab_file = small
  export_dir = str(tmp_path / "export")
  serving.export(config, ckpt, vocab_file, True, SEQ, "classifier", export_dir)
  loaded = tf.saved_model.load(export_dir)
  ids, text = loaded.signatures["serving_default"], loaded.signatures["serve_text"]
  features = _packed(vocab_file)
  # Request i: one row of ids (rows differ) or the texts shifted by i.
  requests = [(i % 2, i) for i in range(32)]

  def call(request):
    kind, i = request
    if kind == 0:
      row = i % len(TEXT_A)
      return ids(**{n: tf.constant(v[row:row + 1]) for n, v in
                    features.items()})["probabilities"].numpy()
    order = [(i + k) % len(TEXT_A) for k in range(len(TEXT_A))]
    return text(text_a=tf.constant([TEXT_A[k] for k in order]),
                text_b=tf.constant([TEXT_B[k] for k in order]))[
                    "probabilities"].numpy()

  alone = [call(r) for r in requests]
  with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
    for _ in range(2):
      together = list(pool.map(call, requests))
      for request, want, got in zip(requests, alone, together):
        np.testing.assert_allclose(got, want, atol=1e-6, err_msg=str(request))
