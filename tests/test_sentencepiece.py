"""ALBERT's SentencePiece tokenization: FullTokenizer(spm) and the fast path.

A small SentencePiece model is trained inside the tests on sample_text.txt,
with the pieces "0," and "5," forced in so that ALBERT's digit-comma fix has
work to do.
"""

import random
import threading

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import tokenization
from bert_tf.text import FastSentencePieceTokenizer
from sentencepiece_models import train_albert_spm


@pytest.fixture(scope="module")
def spm_files(tmp_path_factory, fixtures_dir):
  prefix = tmp_path_factory.mktemp("spm") / "albert"
  train_albert_spm(fixtures_dir / "pretraining_data" / "sample_text.txt",
                   prefix, extra_symbols=["0,", "5,"])
  return str(prefix) + ".model", str(prefix) + ".vocab"


@pytest.fixture(scope="module")
def sp(spm_files):
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top
  processor = spm.SentencePieceProcessor()
  processor.Load(spm_files[0])
  return processor


def test_preprocess_text_hand_checked():
  preprocess = tokenization.preprocess_text
  assert preprocess("  a\t\u00a0b \n c  ") == "a b c"
  # NFKD, then combining characters dropped; quotes are left alone.
  assert preprocess("Caf\u00e9 nai\u0308ve \u00c5") == "Cafe naive A"
  assert preprocess("\ufb01 \u00bd \u2460 x\u00b2") == "fi 1\u20442 1 x2"
  assert preprocess("``a'' \u201cb\u201d") == "``a'' \u201cb\u201d"
  assert preprocess("\u1100\u1161\uac00") == "\u1100\u1161\u1100\u1161"
  # Lower casing comes last (the dot of a capital dotted I is gone by then),
  # with Python's final sigma.
  assert preprocess("\u0130 \u00c9T\u00c9", lower=True) == "i ete"
  assert preprocess("\u039f\u03a3 \u03a3", lower=True) == "\u03bf\u03c2 \u03c3"
  assert preprocess("a  b", remove_space=False) == "a  b"


def test_full_tokenizer_pieces_and_ids(spm_files, sp):
  tokenizer = tokenization.FullTokenizer(None, True,
                                         spm_model_file=spm_files[0])
  assert len(tokenizer.vocab) == 400
  assert tokenizer.vocab["[CLS]"] == 2 and tokenizer.inv_vocab[4] == "[MASK]"
  text = "  In 1990,  Zo\u00eb's   15, 7 cats\t"
  # By hand: "in 1990, zoe's 15, 7 cats"; the raw pieces hold "0," and "5,".
  raw = sp.EncodeAsPieces("in 1990, zoe's 15, 7 cats")
  assert "0," in raw and "5," in raw
  expected = []
  for piece in raw:
    if piece in ("0,", "5,"):
      # The piece again without the comma (SentencePiece puts its word-start
      # marker in front), then the comma.
      expected += sp.EncodeAsPieces(piece[0]) + [","]
    else:
      expected.append(piece)
  tokens = tokenizer.tokenize(text)
  assert tokens == expected
  assert "\u2581" + "0" in tokens or "\u2581" in tokens
  assert tokenizer.tokenize(text.encode("utf-8")) == tokens
  ids = tokenizer.convert_tokens_to_ids(tokens)
  assert ids == [sp.PieceToId(t) for t in tokens]
  assert tokenizer.convert_ids_to_tokens(ids) == [sp.IdToPiece(i) for i in ids]
  assert 1 in ids  # "199": digits this model never saw, kept as text
  # A piece the model lacks maps to <unk>, as PieceToId.
  assert tokenizer.convert_tokens_to_ids(["\u6f22\u5b57"]) == [1]
  cased = tokenization.FullTokenizer(None, False, spm_model_file=spm_files[0])
  assert cased.tokenize("In") == sp.EncodeAsPieces("In")


def test_vocab_file_with_the_model(spm_files, tmp_path):
  model, vocab = spm_files
  tokenizer = tokenization.FullTokenizer(vocab, True, spm_model_file=model)
  assert len(tokenizer.vocab) == 400
  lines = open(vocab, encoding="utf-8").read().splitlines()
  wrong = tmp_path / "wrong.vocab"
  wrong.write_text("\n".join(lines[:7] + lines[8:7:-1] + lines[9:]) + "\n",
                   encoding="utf-8")
  shuffled = lines[:]
  shuffled[7], shuffled[8] = shuffled[8], shuffled[7]
  wrong.write_text("\n".join(shuffled) + "\n", encoding="utf-8")
  with pytest.raises(ValueError, match="wrong.vocab does not match the "
                     "SentencePiece model.*first difference at id 7"):
    tokenization.FullTokenizer(str(wrong), True, spm_model_file=model)


def test_missing_or_bad_model_file(tmp_path):
  with pytest.raises(ValueError, match="needs a vocab_file .* or an "
                     "spm_model_file"):
    tokenization.FullTokenizer(None, True)
  with pytest.raises(ValueError, match="nope.model.*does not exist"):
    tokenization.FullTokenizer(None, True, spm_model_file=str(
        tmp_path / "nope.model"))
  bad = tmp_path / "bad.model"
  bad.write_bytes(b"\x00 not a model")
  with pytest.raises(ValueError, match="bad.model.*not a SentencePiece"):
    tokenization.FullTokenizer(None, True, spm_model_file=str(bad))


# --------------------------------------------------------------- fast path --

ALPHABET = ("aAbZz\u03a3\u03c3\u03c2\u039f ,.,1290\t\n\x0b\x1f\x00\u00a0\u3000\u2028"
            "\u0301\u0300\u00e9\u00c9\u0130\ufb01\u00bd\u2460\u00b2'`\u200b"
            "\u6f22\uac00\U0001d400")


# ASCII texts take the byte-level path: every ASCII whitespace of str.split().
ASCII_ALPHABET = "aAbZz ,.,129\t\n\x0b\x0c\r\x1c\x1f\x00'`=<"


def _random_texts(count, seed, alphabet=ALPHABET):
  rng = random.Random(seed)
  return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
          for _ in range(count)]


def _assert_same_ids(fast, full, sp, texts, batch_size=2048):
  """fast == full's ids, but for SentencePiece's own tie-breaks.

  `tensorflow_text` bundles another SentencePiece build than the Python
  package; on a preprocessed text where their segmentations differ (two
  segmentations of equal score), only that part may differ. Those texts are
  counted and returned; the preprocessing itself must always be equal.

  Args:
    fast: a `FastSentencePieceTokenizer`.
    full: its `FullTokenizer`, or without `preprocess_text` its
      `FullSentencePieceTokenizer`.
    sp: the model's `SentencePieceProcessor`.
    texts: list of str or bytes.
    batch_size: texts per call of `fast.tokenize`.

  Returns:
    The number of ties.
  """
  num_ties = 0
  for start in range(0, len(texts), batch_size):
    batch = texts[start:start + batch_size]
    got = fast.tokenize(tf.constant(batch)).to_list()
    if fast.preprocess_text:
      preprocessed = [t.decode("utf-8") for t in
                      fast.preprocess(tf.constant(batch)).numpy()]
    else:
      preprocessed = [tokenization.convert_to_unicode(t) for t in batch]
    for text, ids, clean in zip(batch, got, preprocessed):
      if fast.preprocess_text:
        assert clean == tokenization.preprocess_text(
            text, lower=full.do_lower_case), repr(text)
      want = full.convert_tokens_to_ids(full.tokenize(text))
      if ids != want:
        graph_pieces = [p.decode("utf-8") for p in
                        fast._sentencepiece.tokenize(clean).numpy()]
        python_pieces = sp.EncodeAsPieces(clean)
        assert graph_pieces != python_pieces, repr(text)
        score = lambda pieces: sum(sp.GetScore(sp.PieceToId(p))
                                   for p in pieces)
        assert score(graph_pieces) == pytest.approx(score(python_pieces)), (
            repr(text))
        num_ties += 1
  return num_ties


@pytest.mark.parametrize("lower", [True, False])
def test_fast_path_gives_full_tokenizer_ids(spm_files, sp, fixtures_dir,
                                            lower):
  full = tokenization.FullTokenizer(None, lower, spm_model_file=spm_files[0])
  fast = FastSentencePieceTokenizer(spm_files[0], lower)
  assert (fast.vocab_size, fast.cls_id, fast.sep_id, fast.mask_id,
          fast.unk_id, fast.pad_id) == (400, 2, 3, 4, 1, 0)
  corpus = (fixtures_dir / "corpora" / "wikitext2_valid.tokens").read_text(
      encoding="utf-8").splitlines()
  texts = (["In 1990, the 2,000, x9, 15,", "  H\u00e9llo \u039f\u03a3. ",
            "", "   ", "\u0301", "12,3 4, 5,,"] + _random_texts(3000, 0) +
           _random_texts(1000, 1, ASCII_ALPHABET) + corpus[:1000])
  num_ties = _assert_same_ids(fast, full, sp, texts)
  assert num_ties <= 3


@pytest.mark.slow
def test_fast_path_on_every_corpus_line(spm_files, sp, fixtures_dir):
  for lower in (True, False):
    full = tokenization.FullTokenizer(None, lower, spm_model_file=spm_files[0])
    fast = FastSentencePieceTokenizer(spm_files[0], lower)
    for name in ("wikitext2_valid.tokens", "clue_small_zh.txt"):
      lines = (fixtures_dir / "corpora" / name).read_text(
          encoding="utf-8").splitlines()
      num_ties = _assert_same_ids(fast, full, sp, lines)
      assert num_ties <= len(lines) // 1000, (name, num_ties)


def test_fast_path_in_a_dataset_map(spm_files):
  fast = FastSentencePieceTokenizer(spm_files[0], True)
  full = tokenization.FullTokenizer(None, True, spm_model_file=spm_files[0])
  texts = ["Sample text 1990, ok", "\u00c9T\u00c9 \u039f\u03a3"]
  dataset = tf.data.Dataset.from_tensor_slices(texts).batch(2).map(
      fast.tokenize)
  got = next(iter(dataset)).to_list()
  assert got == [full.convert_tokens_to_ids(full.tokenize(t)) for t in texts]
  assert np.all(np.concatenate(got) < 400)


def test_word_cache_gives_the_same_pieces(spm_files, fixtures_dir):
  # create_pretraining_data tokenizes each space-separated piece once: exact
  # for models that, as ALBERT's, split on whitespace and add a dummy "▁".
  from bert_tf.data import pretraining as pi  # pylint: disable=g-import-not-at-top
  from bert_tf.data.pretraining import documents  # pylint: disable=g-import-not-at-top
  tokenizer = tokenization.FullTokenizer(None, True,
                                         spm_model_file=spm_files[0])
  assert documents._splits_on_spaces(tokenizer.sp_model)
  cached = pi.PieceCachingTokenizer(
      lambda texts: [tokenizer.tokenize(t) for t in texts], 5000)
  corpus = (fixtures_dir / "corpora" / "wikitext2_valid.tokens").read_text(
      encoding="utf-8").splitlines()[:500]
  texts = _random_texts(3000, 2) + _random_texts(1000, 3, ASCII_ALPHABET) + (
      corpus)
  assert cached(texts) == [tokenizer.tokenize(t) for t in texts]


def test_word_cache_is_off_for_models_that_join_words(fixtures_dir,
                                                      tmp_path):
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top
  from bert_tf.data import pretraining as pi  # pylint: disable=g-import-not-at-top
  from bert_tf.data.pretraining import documents  # pylint: disable=g-import-not-at-top
  spm.SentencePieceTrainer.train(
      input=str(fixtures_dir / "pretraining_data" / "sample_text.txt"),
      model_prefix=str(tmp_path / "joined"), vocab_size=400, minloglevel=2,
      split_by_whitespace=False,
      user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"])
  tokenizer = tokenization.FullTokenizer(
      None, True, spm_model_file=str(tmp_path / "joined.model"))
  assert not documents._splits_on_spaces(tokenizer.sp_model)
  options = pi.RunOptions(input_file="", output_file="", vocab_file=None,
                          spm_model_file=str(tmp_path / "joined.model"))
  assert not isinstance(pi.make_line_tokenizer(tokenizer, options),
                        pi.PieceCachingTokenizer)


# ------------------------------------ Model Garden's SentencePiece additions --


def test_encode_ids_and_albert_return_unicode(sp):
  text = tokenization.preprocess_text("In 1990, Zo\u00eb's 15, cats", lower=True)
  pieces = tokenization.encode_pieces(sp, text)
  assert "0," not in pieces and "," in pieces
  assert tokenization.encode_ids(sp, text) == [sp.PieceToId(p) for p in pieces]
  # ALBERT's third argument changed only Python 2's output.
  assert tokenization.encode_pieces(sp, text, False) == pieces
  assert tokenization.encode_pieces(sp, text, return_unicode=False,
                                    sample=False) == pieces


def _has_digit_comma_piece(pieces):
  return any(len(p) > 1 and p[-1] == "," and p[-2].isdigit() for p in pieces)


def test_sampled_pieces(sp):
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top
  text = "the quick brown fox jumps over the lazy dog in 1990, 15, and more"
  best = tokenization.encode_pieces(sp, text)

  def draw(seed, encode):
    # SentencePiece seeds a thread's generator when the thread first samples:
    # each draw runs in a new thread, so the seed decides it whatever this
    # thread sampled before.
    spm.set_random_generator_seed(seed)
    samples = []
    thread = threading.Thread(target=lambda: samples.extend(
        encode(sp, text, sample=True) for _ in range(20)))
    thread.start()
    thread.join()
    return samples

  samples = draw(3, tokenization.encode_pieces)
  # The library's generator decides; its seed makes the draws reproducible.
  assert draw(3, tokenization.encode_pieces) == samples
  # Segmentations vary (the best one may be among them).
  assert len({tuple(s) for s in samples}) > 5
  assert sum(s == best for s in samples) < len(samples) // 2
  assert draw(3, tokenization.encode_ids) == [
      [sp.PieceToId(p) for p in s] for s in samples]
  for pieces in samples:
    # The same characters, cut elsewhere, with the digit-comma fix applied.
    assert "".join(pieces).replace("\u2581", "") == text.replace(" ", "")
    assert not _has_digit_comma_piece(pieces)


def test_full_sentencepiece_tokenizer(spm_files, sp, tmp_path):
  tokenizer = tokenization.FullSentencePieceTokenizer(spm_files[0])
  assert tokenizer.sp_model.GetPieceSize() == len(tokenizer.vocab) == 400
  assert tokenizer.vocab["[MASK]"] == 4 and tokenizer.inv_vocab[2] == "[CLS]"
  # No preprocess_text: case, accents and space runs reach the model as given.
  text = "Caf\u00e9  In 1990, X"
  pieces = tokenizer.tokenize(text)
  assert pieces == tokenization.encode_pieces(sp, text)
  assert tokenizer.tokenize(text.encode("utf-8")) == pieces
  full = tokenization.FullTokenizer(None, True, spm_model_file=spm_files[0])
  assert full.tokenize(text) != pieces
  assert full.tokenize(text) == tokenizer.tokenize(
      tokenization.preprocess_text(text, lower=True))
  ids = tokenizer.convert_tokens_to_ids(pieces)
  assert ids == [sp.PieceToId(p) for p in pieces] and 1 in ids  # "\u00e9"
  assert tokenizer.convert_ids_to_tokens(ids) == [sp.IdToPiece(i) for i in ids]
  # Unknown pieces get <unk>'s id; bytes are read as UTF-8, as PieceToId.
  assert tokenizer.convert_tokens_to_ids(
      ["\u6f22", b"[SEP]", "[SEP]", "\u2581in".encode("utf-8")]) == [
          1, 3, 3, sp.PieceToId("\u2581in")]
  with pytest.raises(ValueError, match="nope.model.*does not exist"):
    tokenization.FullSentencePieceTokenizer(str(tmp_path / "nope.model"))


def test_fast_path_without_preprocessing(spm_files, sp, fixtures_dir):
  full = tokenization.FullSentencePieceTokenizer(spm_files[0])
  fast = FastSentencePieceTokenizer(spm_files[0], preprocess_text=False)
  corpus = (fixtures_dir / "corpora" / "wikitext2_valid.tokens").read_text(
      encoding="utf-8").splitlines()
  texts = (["In 1990, the 2,000, x9, 15,", "  H\u00e9llo \u039f\u03a3. ",
            "", "   ", "\u0301", "12,3 4, 5,,"] + _random_texts(2000, 5) +
           _random_texts(500, 6, ASCII_ALPHABET) + corpus[:500])
  assert _assert_same_ids(fast, full, sp, texts) <= 3
  # Invalid UTF-8 is dropped, as convert_to_unicode.
  assert _assert_same_ids(fast, full, sp, [
      b"caf\xc3 1990,\xff x", b"\xed\xa0\x80A", b"a\x80b"]) == 0
  assert fast.tokenize(tf.constant(["Caf\u00e9"])).to_list() != (
      FastSentencePieceTokenizer(spm_files[0]).tokenize(
          tf.constant(["Caf\u00e9"])).to_list())


def test_same_pieces_as_model_garden_but_its_comma_fix(spm_files, sp,
                                                       fixtures_dir):
  from official.nlp.tools import tokenization as model_garden  # pylint: disable=g-import-not-at-top
  ours = tokenization.FullSentencePieceTokenizer(spm_files[0])
  theirs = model_garden.FullSentencePieceTokenizer(spm_files[0])
  assert ours.vocab == theirs.vocab
  corpus = (fixtures_dir / "corpora" / "wikitext2_valid.tokens").read_text(
      encoding="utf-8").splitlines()[:1000]
  texts = [tokenization.preprocess_text(t, lower=True) for t in
           corpus + _random_texts(2000, 4)] + ["in 1990, 15, 7,", "a5, 0,"]
  num_fixed = 0
  for text in texts:
    mine, model_garden_pieces = ours.tokenize(text), theirs.tokenize(text)
    assert ours.convert_tokens_to_ids(model_garden_pieces) == (
        theirs.convert_tokens_to_ids(model_garden_pieces))
    # Where a digit-comma piece does not start a word, Model Garden drops the
    # word-start mark SentencePiece puts before the re-encoded digits; the
    # originals under Python 3 keep it. Nothing else differs.
    inner = [p for p in sp.EncodeAsPieces(text) if _has_digit_comma_piece([p])
             and not p.startswith("\u2581")]
    num_fixed += len(inner)
    assert "".join(mine).replace("\u2581", "") == "".join(
        model_garden_pieces).replace("\u2581", ""), repr(text)
    assert "".join(mine).count("\u2581") == "".join(
        model_garden_pieces).count("\u2581") + len(inner), repr(text)
    if not inner:
      assert mine == model_garden_pieces, repr(text)
      assert tokenization.encode_ids(sp, text) == model_garden.encode_ids(
          sp, text)
  assert num_fixed >= 4
