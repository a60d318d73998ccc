"""Runs task models on fixed inputs; as a script, loads `.keras` files.

`python saved_models.py DIR` (a fresh process, for test_serialization.py)
loads `DIR/<name>.keras` for every name of `DIR/names.json`, runs it on
`DIR/inputs.npz` and writes its outputs to `DIR/<name>.loaded.npz` and the
variable paths of all models to `DIR/paths.loaded.json`.
"""

import json
import sys

import keras
import numpy as np


def run(model, inputs):
  """Runs a BERT task model or a Transformer-XL on numpy `inputs`.

  Args:
    model: a bert_tf model.
    inputs: dict of numpy arrays: BERT features, plus `xl_inputs` and
      `xl_targets` [len, batch] for Transformer-XL.

  Returns:
    dict of numpy arrays: each output, lists by index ("encoder_outputs/1").
  """
  if type(model).__name__ == "TransformerXL":
    outputs = model(inputs["xl_inputs"], mems=model.init_mems(2),
                    targets=inputs["xl_targets"])
  else:
    outputs = model({k: v for k, v in inputs.items()
                     if not k.startswith("xl_")})
  flat = {}
  for key, value in outputs.items():
    for i, tensor in enumerate(value if isinstance(value, list) else [value]):
      flat["%s/%d" % (key, i)] = np.asarray(tensor)
  return flat


def main(directory):
  import bert_tf.modeling  # pylint: disable=g-import-not-at-top,unused-import
  inputs = dict(np.load(directory + "/inputs.npz"))
  with open(directory + "/names.json") as f:
    names = json.load(f)
  paths = {}
  for name in names:
    model = keras.models.load_model("%s/%s.keras" % (directory, name))
    np.savez("%s/%s.loaded.npz" % (directory, name), **run(model, inputs))
    paths[name] = [v.path for v in model.weights]
  with open(directory + "/paths.loaded.json", "w") as f:
    json.dump(paths, f)


if __name__ == "__main__":
  main(sys.argv[1])
