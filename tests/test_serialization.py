"""Keras serialization: every layer and model round-trips its config, and each
task model saved to `.keras` loads in a fresh process with the same outputs
and variable paths (the checkpoint names)."""

import inspect
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from bert_tf import modeling
from bert_tf.modeling import BertClassifier
from bert_tf.modeling import BertConfig
from bert_tf.modeling import BertModel
from bert_tf.modeling import BertPretrainer
from bert_tf.modeling import BertRegressor
from bert_tf.modeling import BertSquad
from bert_tf.modeling import BertSquadV2
from bert_tf.modeling import transformer_xl
from saved_models import run

TESTS = pathlib.Path(__file__).resolve().parent

BERT = dict(vocab_size=30, hidden_size=8, num_hidden_layers=2,
            num_attention_heads=2, intermediate_size=12,
            max_position_embeddings=16, type_vocab_size=2)


def _config(**extra):
  return BertConfig.from_dict(dict(BERT, **extra))


def _models():
  """name -> a task model with tiny dimensions, its weights random."""
  xl = transformer_xl.TransformerXLConfig(
      n_token=40, n_layer=2, d_model=8, d_embed=8, n_head=2, d_head=4,
      d_inner=12, mem_len=3, cutoffs=[10, 20], div_val=2,
      proj_share_all_but_first=True, untie_r=True)
  return {
      "pretrainer": BertPretrainer(_config()),
      "pretrainer_sbo_no_nsp": BertPretrainer(
          _config(span_boundary_position_embedding_size=4,
                  span_boundary_max_span_length=3),
          next_sentence=False, span_boundary=True),
      "classifier": BertClassifier(_config(), num_labels=3),
      "regressor": BertRegressor(_config()),
      "squad": BertSquad(_config()),
      "squad_v2": BertSquadV2(_config(embedding_size=4), start_n_top=3,
                              end_n_top=2),
      "albert": BertModel(_config(embedding_size=4, num_hidden_groups=2,
                                  inner_group_num=2)),
      "tupe": BertModel(_config(tupe="relative", tupe_num_buckets=8,
                                tupe_max_distance=8)),
      "hierarchical": BertModel(_config(hierarchical_position_alpha=0.4)),
      "transformer_xl": transformer_xl.TransformerXL(xl),
  }


def _inputs():
  """The inputs of every model, as numpy arrays."""
  rng = np.random.RandomState(0)
  mask = np.ones([2, 6], np.int32)
  mask[1, 4:] = 0
  return {
      "input_ids": rng.randint(0, 30, [2, 6]).astype(np.int32),
      "input_mask": mask,
      "segment_ids": np.array([[0, 0, 0, 1, 1, 1]] * 2, np.int32),
      "p_mask": np.array([[0, 1, 1, 0, 0, 1]] * 2, np.int32),
      "masked_lm_positions": np.array([[1, 2], [2, 3]], np.int32),
      "masked_lm_ids": np.array([[4, 5], [6, 0]], np.int32),
      "masked_lm_weights": np.array([[1, 1], [1, 0]], np.float32),
      "next_sentence_labels": np.array([0, 1], np.int32),
      "masked_lm_span_left": np.array([[0, 1], [1, 2]], np.int32),
      "masked_lm_span_right": np.array([[3, 3], [4, 4]], np.int32),
      "masked_lm_span_offset": np.array([[0, 1], [0, 5]], np.int32),
      "xl_inputs": rng.randint(0, 40, [5, 2]).astype(np.int32),
      "xl_targets": rng.randint(0, 40, [5, 2]).astype(np.int32),
  }


@pytest.fixture(scope="module")
def models():
  return _models()


def _bert_tf_classes():
  """Every Keras layer or model class defined in bert_tf.modeling."""
  modules = [module for name, module in sys.modules.items()
             if name.startswith("bert_tf.modeling")]
  return {cls for module in modules
          for _, cls in inspect.getmembers(module, inspect.isclass)
          if issubclass(cls, keras.layers.Layer) and
          cls.__module__.startswith("bert_tf.modeling")}


def test_every_layer_and_model_class_is_registered():
  classes = _bert_tf_classes()
  assert len(classes) >= 20  # the discovery works
  for cls in classes:
    assert keras.saving.get_registered_name(cls) == "bert_tf>" + cls.__name__
    assert keras.saving.get_registered_object(
        "bert_tf>" + cls.__name__) is cls


def test_every_layer_round_trips_its_config(models):
  seen = set()
  for model in models.values():
    for layer in model._flatten_layers(include_self=True):  # pylint: disable=protected-access
      if not type(layer).__module__.startswith("bert_tf."):
        continue
      seen.add(type(layer))
      config = keras.saving.serialize_keras_object(layer)
      json.dumps(config)  # plain JSON
      clone = keras.saving.deserialize_keras_object(config)
      assert type(clone) is type(layer)
      assert clone.get_config() == layer.get_config(), type(layer).__name__
  assert seen == _bert_tf_classes()


def test_clone_model_has_the_paths_and_with_the_weights_the_outputs(models):
  inputs = _inputs()
  for name, model in models.items():
    clone = keras.models.clone_model(model)
    assert type(clone) is type(model)
    assert ([(v.path, v.shape, v.trainable) for v in clone.weights] ==
            [(v.path, v.shape, v.trainable) for v in model.weights]), name
    clone.set_weights(model.get_weights())
    expected, actual = run(model, inputs), run(clone, inputs)
    assert sorted(actual) == sorted(expected)
    for key in expected:
      np.testing.assert_allclose(actual[key], expected[key], atol=1e-6,
                                 err_msg="%s %s" % (name, key))


def test_saved_models_load_in_a_fresh_process(models, tmp_path):
  inputs = _inputs()
  np.savez(tmp_path / "inputs.npz", **inputs)
  expected = {}
  for name, model in models.items():
    expected[name] = run(model, inputs)
    model.save(str(tmp_path / ("%s.keras" % name)))
  (tmp_path / "names.json").write_text(json.dumps(sorted(models)))
  env = dict(os.environ, PYTHONPATH=str(TESTS.parent), TF_CPP_MIN_LOG_LEVEL="2")
  result = subprocess.run([sys.executable, str(TESTS / "saved_models.py"),
                           str(tmp_path)],
                          env=env, capture_output=True, text=True,
                          timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  paths = json.loads((tmp_path / "paths.loaded.json").read_text())
  for name, model in models.items():
    assert paths[name] == [v.path for v in model.weights], name
    loaded = dict(np.load(tmp_path / ("%s.loaded.npz" % name)))
    assert sorted(loaded) == sorted(expected[name]), name
    for key, value in expected[name].items():
      np.testing.assert_allclose(loaded[key], value, atol=1e-6,
                                 err_msg="%s %s" % (name, key))


def test_config_is_the_bert_config_dict():
  config = _config(tupe="absolute")
  model = BertClassifier(config, num_labels=2, name="glue")
  saved = model.get_config()
  assert saved["config"] == config.to_dict()
  assert saved["num_labels"] == 2 and saved["name"] == "glue"
  assert json.loads(json.dumps(saved)) == saved
  restored = BertClassifier.from_config(saved)
  assert restored.config.to_dict() == config.to_dict()
  xl = modeling.transformer_xl.TransformerXLConfig(n_token=20, n_layer=1)
  assert (transformer_xl.TransformerXL(xl).get_config()["config"] ==
          xl.to_dict())


def test_a_tied_head_without_its_table_fails_clearly():
  from bert_tf.modeling import heads  # pylint: disable=g-import-not-at-top
  head = heads.MaskedLMHead.from_config(
      heads.MaskedLMHead(_config()).get_config())
  head.build()
  with pytest.raises(ValueError, match="MaskedLMHead 'predictions' has no "
                     "embedding_table"):
    head(tf.zeros([1, 3, 8]), tf.zeros([1, 1], tf.int32))
