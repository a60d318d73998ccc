"""SentencePiece models for the tests, trained on the spot."""

import json


def train_albert_spm(input_path, model_prefix, vocab_size=400,
                     extra_symbols=()):
  """Trains a SentencePiece model laid out as ALBERT's released ones.

  Args:
    input_path: the text file to train on.
    model_prefix: path prefix of the `.model` and `.vocab` written.
    vocab_size: number of pieces.
    extra_symbols: user-defined pieces after `[CLS]`, `[SEP]`, `[MASK]`.

  Returns:
    The path of the `.model` file (str).
  """
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top
  spm.SentencePieceTrainer.train(
      input=str(input_path), model_prefix=str(model_prefix),
      vocab_size=vocab_size, pad_id=0, unk_id=1, bos_id=-1, eos_id=-1,
      minloglevel=2,
      user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"] + list(extra_symbols))
  return str(model_prefix) + ".model"


def write_squad_texts(fixtures_dir, path):
  """Writes the contexts and questions of two fixture SQuAD samples.

  Args:
    fixtures_dir: the fixtures directory (pathlib.Path).
    path: the text file to write, one context or question a line.

  Returns:
    `path`.
  """
  lines = []
  for name in ("train-v1.1-sample.json", "dev-v2.0-sample.json"):
    with open(fixtures_dir / "squad" / name, encoding="utf-8") as f:
      for article in json.load(f)["data"]:
        for p in article["paragraphs"]:
          lines.append(p["context"])
          lines.extend(qa["question"] for qa in p["qas"])
  path.write_text("\n".join(lines) + "\n", encoding="utf-8")
  return path
