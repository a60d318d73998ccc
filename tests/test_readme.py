"""The README's model snippet runs as written (on the fixtures' small checkpoint)."""

import contextlib
import io
import pathlib
import re

import numpy as np

from bert_tf import checkpoints
from bert_tf.modeling import BertConfig
from bert_tf.modeling import BertModel

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _model_snippet():
  """The first Python block of the README's "The model" section."""
  text = README.read_text()
  section = text[text.index("\n## The model\n"):]
  return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_model_snippet_runs_as_written(fixtures_dir):
  snippet = _model_snippet()
  released = 'bert_dir = "uncased_L-12_H-768_A-12"'
  assert released in snippet
  # The one change: the released directory becomes the fixtures' small one.
  small = fixtures_dir / "original_bert_small"
  code = snippet.replace(released, "bert_dir = %r" % str(small))
  namespace = {}
  printed = io.StringIO()
  with contextlib.redirect_stdout(printed):
    exec(compile(code, "README.md", "exec"), namespace)  # pylint: disable=exec-used
  assert "Loaded %d variables" % len(namespace["model"].weights) in (
      printed.getvalue())
  ids = namespace["ids"]
  length = len(namespace["tokens"])
  assert ids.shape == (1, length)
  assert ids[0, 0] == namespace["tokenizer"].vocab["[CLS]"]
  assert "(1, %d, 48) (1, 48)" % length in printed.getvalue()
  # The numbers are the model's own.
  model = BertModel(BertConfig.from_json_file(str(small / "bert_config.json")))
  checkpoints.load_checkpoint(model, str(small / "bert_model.ckpt"))
  expected = model({"input_ids": ids}, training=False)
  np.testing.assert_allclose(namespace["outputs"]["pooled_output"],
                             expected["pooled_output"], atol=1e-6)
