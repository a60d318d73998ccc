"""Tests of bert_tf.tokenization against the original algorithm's outputs.

The expected token lists follow by hand from google-research/bert's
tokenization.py (clean, CJK spaces, lower + NFD + drop Mn, punctuation split,
greedy longest-match-first WordPiece) with the released vocabularies.
"""

import unicodedata

import hypothesis
from hypothesis import strategies as st
import pytest

from bert_tf import tokenization


@pytest.fixture(scope="module")
def uncased(fixtures_dir):
  return tokenization.FullTokenizer(
      str(fixtures_dir / "vocab" / "uncased_vocab.txt"), do_lower_case=True)


@pytest.fixture(scope="module")
def cased(fixtures_dir):
  return tokenization.FullTokenizer(
      str(fixtures_dir / "vocab" / "cased_vocab.txt"), do_lower_case=False)


@pytest.fixture(scope="module")
def chinese(fixtures_dir):
  return tokenization.FullTokenizer(
      str(fixtures_dir / "vocab" / "chinese_vocab.txt"), do_lower_case=True)


UNCASED_CASES = [
    # Accents stripped after lower casing; "," split off.
    ("UNwant\u00e9d,running", ["unwanted", ",", "running"]),
    ("H\u00e9llo, WORLD! na\u00efve Caf\u00e9",
     ["hello", ",", "world", "!", "naive", "cafe"]),
    # NUL, ZWSP (Cf) and U+FFFD vanish inside words; \t, NBSP (Zs) and
    # U+2028 (Zl, split on by str.split) separate words.
    ("a\x00b\u200bc\tD\u00a0e\u2028F\ufffdg",
     ["abc", "d", "e", "f", "##g"]),
    # Unicode P* punctuation (and em dash, guillemets) split off.
    ("\u00bfQu\u00e9?\u2014dijo \u00ab\u00e9l\u00bb.",
     ["\u00bf", "que", "?", "\u2014", "di", "##jo", "\u00ab", "el", "\u00bb",
      "."]),
    # ASCII symbols that are not P* ($ ^ ` ~) are punctuation too.
    ("a$b^c`d~e", ["a", "$", "b", "^", "c", "`", "d", "~", "e"]),
    # CJK ideographs become words of their own, kana do not.
    ("\u4e2d\u6587abc\u65e5\u672c\u8a9e",
     ["\u4e2d", "\u6587", "abc", "\u65e5", "\u672c", "\u8a9e"]),
    # str.lower(): final sigma at a word's end only.
    ("\u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03a3",
     ["\u03bf", "##\u03b4", "##\u03c5", "##\u03c3", "##\u03c3", "##\u03b5",
      "##\u03c5", "##\u03c2"]),
    # "I with dot above" lowers to "i" + U+0307, a Mn that is dropped.
    ("\u0130stanbul", ["istanbul"]),
    # Over-long word: 201 characters.
    ("x" * 201, ["[UNK]"]),
    ("unaffable", ["una", "##ffa", "##ble"]),
    # NFD is canonical only: the "fi" ligature stays; an unknown word -> [UNK].
    ("\ufb01ne \u00bd \u2460", ["\ufb01", "##ne", "\u00bd", "[UNK]"]),
    # Hangul syllables decompose into jamo under NFD.
    ("\ud55c\uad6d\uc5b4 \u30c6\u30b9\u30c8",
     ["\u1112", "##\u1161", "##\u11ab", "##\u1100", "##\u116e", "##\u11a8",
      "##\u110b", "##\u1165", "\u30c6", "##\u30b9", "##\u30c8"]),
    ("", []),
    (" \t\n\r\u3000 ", []),
]

CASED_CASES = [
    ("UNwant\u00e9d,running",
     ["UN", "##wan", "##t\u00e9", "##d", ",", "running"]),
    ("H\u00e9llo, WORLD! na\u00efve Caf\u00e9",
     ["H", "##\u00e9", "##llo", ",", "W", "##OR", "##LD", "!", "na",
      "##\u00ef", "##ve", "Caf\u00e9"]),
    ("a\x00b\u200bc\tD\u00a0e\u2028F\ufffdg",
     ["a", "##b", "##c", "D", "e", "F", "##g"]),
    ("\u0130stanbul", ["\u0130", "##stan", "##bul"]),
    ("\u4e2d\u6587abc\u65e5\u672c\u8a9e",
     ["\u4e2d", "\u6587", "a", "##b", "##c", "\u65e5", "\u672c", "[UNK]"]),
    ("unaffable", ["un", "##af", "##fa", "##ble"]),
]

CHINESE_CASES = [
    ("\u6211\u7231\u5317\u4eac\u5929\u5b89\u95e8\uff01",
     ["\u6211", "\u7231", "\u5317", "\u4eac", "\u5929", "\u5b89", "\u95e8",
      "\uff01"]),
    ("\u00bfQu\u00e9?\u2014dijo",
     ["[UNK]", "q", "##ue", "?", "[UNK]", "di", "##jo"]),
    ("\u0130stanbul", ["is", "##tan", "##bu", "##l"]),
    # Compatibility ideograph U+F900 is spaced and decomposes to U+8C48.
    ("a\uf900b", ["a", "\u8c48", "b"]),
]


@pytest.mark.parametrize("text,expected", UNCASED_CASES)
def test_uncased_tokens(uncased, text, expected):
  assert uncased.tokenize(text) == expected


@pytest.mark.parametrize("text,expected", CASED_CASES)
def test_cased_tokens(cased, text, expected):
  assert cased.tokenize(text) == expected


@pytest.mark.parametrize("text,expected", CHINESE_CASES)
def test_chinese_tokens(chinese, text, expected):
  assert chinese.tokenize(text) == expected


def test_word_of_exactly_200_characters_is_split(uncased):
  tokens = uncased.tokenize("a" * 200)
  assert tokens[:3] == ["aaa", "##aa", "##aa"]
  assert len(tokens) == 100
  assert "".join(t.lstrip("#") for t in tokens) == "a" * 200


def test_bytes_input_drops_invalid_utf8(uncased):
  assert uncased.tokenize(b"caf\xc3\xa9 \xff\xfeok") == ["cafe", "ok"]


def test_ids_round_trip(uncased):
  assert uncased.convert_tokens_to_ids(
      ["[CLS]", "hello", "[SEP]", "[UNK]"]) == [101, 7592, 102, 100]
  with pytest.raises(KeyError, match="notatoken"):  # as the original
    uncased.convert_tokens_to_ids(["notatoken"])
  assert uncased.convert_ids_to_tokens([101, 7592, 102]) == [
      "[CLS]", "hello", "[SEP]"]
  assert len(uncased.vocab) == 30522
  assert uncased.inv_vocab[0] == "[PAD]"


def test_module_level_conversions(uncased):
  assert tokenization.convert_tokens_to_ids(uncased.vocab, ["hello"]) == [7592]
  assert tokenization.convert_ids_to_tokens(uncased.inv_vocab, [7592]) == [
      "hello"]
  assert tokenization.convert_by_vocab({"a": 1, "[UNK]": 9}, ["a"]) == [1]
  with pytest.raises(KeyError):
    tokenization.convert_by_vocab({"a": 1, "[UNK]": 9}, ["a", "b"])


def test_wordpiece_tokenizer_small_vocab():
  vocab = {t: i for i, t in enumerate(
      ["[UNK]", "un", "##aff", "##able", "runn", "##ing", "want", "##want"])}
  wordpiece = tokenization.WordpieceTokenizer(vocab)
  assert wordpiece.tokenize("unaffable runnings unwant") == [
      "un", "##aff", "##able", "[UNK]", "un", "##want"]
  assert tokenization.WordpieceTokenizer(
      vocab, max_input_chars_per_word=5).tokenize("unaffable want") == [
          "[UNK]", "want"]
  assert wordpiece.tokenize("") == []


def test_whitespace_tokenize_and_conversions():
  assert tokenization.whitespace_tokenize("  a\tb \u3000c\n") == ["a", "b", "c"]
  assert tokenization.whitespace_tokenize(" \n ") == []
  assert tokenization.convert_to_unicode(b"\xc3\xa9\xff") == "\u00e9"
  assert tokenization.convert_to_unicode("x") == "x"
  assert tokenization.printable_text(b"abc") == "abc"
  with pytest.raises(ValueError, match="Unsupported string type"):
    tokenization.convert_to_unicode(3)
  with pytest.raises(ValueError, match="Unsupported string type"):
    tokenization.printable_text(None)


def test_load_vocab_strips_and_last_duplicate_wins(tmp_path):
  path = tmp_path / "vocab.txt"
  path.write_text("[PAD]\n a \nb\na\n\n[UNK]\n", encoding="utf-8")
  vocab = tokenization.load_vocab(str(path))
  assert list(vocab.items()) == [
      ("[PAD]", 0), ("a", 3), ("b", 2), ("", 4), ("[UNK]", 5)]


def test_load_vocab_missing_or_empty_names_the_path(tmp_path):
  missing = str(tmp_path / "nope.txt")
  with pytest.raises(ValueError, match="nope.txt.*does not exist"):
    tokenization.load_vocab(missing)
  empty = tmp_path / "empty.txt"
  empty.write_bytes(b"")
  with pytest.raises(ValueError, match="empty.txt.*is empty"):
    tokenization.FullTokenizer(str(empty))


def test_validate_case_matches_checkpoint():
  tokenization.validate_case_matches_checkpoint(True, None)
  tokenization.validate_case_matches_checkpoint(
      True, "/x/uncased_L-12_H-768_A-12/bert_model.ckpt")
  tokenization.validate_case_matches_checkpoint(
      False, "/x/cased_L-12_H-768_A-12/bert_model.ckpt")
  tokenization.validate_case_matches_checkpoint(False, "/x/mine/model.ckpt")
  tokenization.validate_case_matches_checkpoint(
      True, "/x/my_model/bert_model.ckpt")
  ckpt = "/x/uncased_L-24_H-1024_A-16/bert_model.ckpt"
  with pytest.raises(ValueError) as e:
    tokenization.validate_case_matches_checkpoint(False, ckpt)
  assert str(e.value) == (
      "You passed in `--do_lower_case=False` with `--init_checkpoint=%s`. "
      "However, `uncased_L-24_H-1024_A-16` seems to be a lowercased model, so "
      "you should pass in `--do_lower_case=True` so that the fine-tuning "
      "matches how the model was pre-training. If this error is wrong, please "
      "just comment out this check." % ckpt)
  ckpt = "gs://b/multi_cased_L-12_H-768_A-12/bert_model.ckpt-100"
  with pytest.raises(ValueError) as e:
    tokenization.validate_case_matches_checkpoint(True, ckpt)
  assert str(e.value) == (
      "You passed in `--do_lower_case=True` with `--init_checkpoint=%s`. "
      "However, `multi_cased_L-12_H-768_A-12` seems to be a cased model, so "
      "you should pass in `--do_lower_case=False` so that the fine-tuning "
      "matches how the model was pre-training. If this error is wrong, please "
      "just comment out this check." % ckpt)


def _dropped(char):
  """Whether the original's _clean_text removes `char`."""
  return (char in ("\x00", "\ufffd") or
          (char not in "\t\n\r" and unicodedata.category(char) in ("Cc", "Cf")))


_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(blacklist_categories=("Cs",)),
        st.sampled_from("AΣσ İ \t\n\u00a0\u2028é\u0301#-.,\u4e00\u3000x")),
    max_size=60)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(text=_TEXT)
def test_properties_cased(cased, text):
  basic = cased.basic_tokenizer.tokenize(text)
  # Cased: only dropped characters and whitespace are lost.
  kept = "".join(c for c in text if not _dropped(c) and not c.isspace())
  assert "".join(basic) == kept
  for word in basic:
    assert not any(c.isspace() for c in word)
    if any(tokenization._is_punctuation(c) for c in word):  # pylint: disable=protected-access
      assert len(word) == 1
  tokens = cased.tokenize(text)
  assert all(t in cased.vocab for t in tokens)
  # Each word re-joins from its pieces unless it became [UNK].
  for word in basic:
    pieces = cased.wordpiece_tokenizer.tokenize(word)
    if pieces != ["[UNK]"]:
      assert pieces[0] + "".join(p[2:] for p in pieces[1:]) == word
      assert all(p.startswith("##") for p in pieces[1:])


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(text=_TEXT)
def test_properties_uncased(uncased, text):
  basic = uncased.basic_tokenizer.tokenize(text)
  for word in basic:
    assert word == word.lower()
    assert not any(unicodedata.category(c) == "Mn" for c in word)
  # Lower casing applies word by word to the cleaned, whitespace-split text.
  cleaned = "".join(" " if c.isspace() else c for c in text if not _dropped(c))
  expected = "".join(
      "".join(c for c in unicodedata.normalize("NFD", w.lower())
              if unicodedata.category(c) != "Mn") for w in cleaned.split())
  assert "".join(basic) == expected
  assert all(t in uncased.vocab for t in uncased.tokenize(text))


# ------------------------------------- Model Garden's additions (drop-in) --


def test_basic_tokenizer_keeps_punctuation_without_split():
  text = " Don't\tSTOP\u2014now!  na\u00efve? \u4e2d\u6587,abc. "
  lower = tokenization.BasicTokenizer(do_lower_case=True, split_on_punc=False)
  # Only whitespace separates words; CJK ideographs still stand alone, and
  # lower casing still strips accents.
  assert lower.tokenize(text) == [
      "don't", "stop\u2014now!", "naive?", "\u4e2d", "\u6587", ",abc."]
  cased = tokenization.BasicTokenizer(do_lower_case=False, split_on_punc=False)
  assert cased.tokenize(text) == [
      "Don't", "STOP\u2014now!", "na\u00efve?", "\u4e2d", "\u6587", ",abc."]
  # The default is the original's split.
  assert tokenization.BasicTokenizer().split_on_punc
  assert tokenization.BasicTokenizer(do_lower_case=False).tokenize(
      "now!") == ["now", "!"]


def test_wordpiece_tokenizer_with_punctuation_tokens():
  vocab = {t: i for i, t in enumerate(
      ["[UNK]", "hel", "##lo", "##!", "!", "?", "un", "##want"])}
  wordpiece = tokenization.WordpieceTokenizer(vocab)
  # A punctuation mark left inside a word is matched as a continuation.
  assert wordpiece.tokenize("hello!") == ["hel", "##lo", "##!"]
  assert wordpiece.tokenize("hello !") == ["hel", "##lo", "!"]
  assert wordpiece.tokenize("hello? unwant!") == ["[UNK]", "un", "##want",
                                                  "##!"]
  # The original's limit, not Model Garden's 400.
  assert wordpiece.max_input_chars_per_word == 200


def test_full_tokenizer_without_split(uncased, cased, fixtures_dir):
  uncased_no_split = tokenization.FullTokenizer(
      str(fixtures_dir / "vocab" / "uncased_vocab.txt"), split_on_punc=False)
  cased_no_split = tokenization.FullTokenizer(
      str(fixtures_dir / "vocab" / "cased_vocab.txt"), False,
      split_on_punc=False)
  assert uncased_no_split.tokenize("Hello, World!") == [
      "hello", "##,", "world", "##!"]
  assert uncased.tokenize("Hello, World!") == ["hello", ",", "world", "!"]
  assert cased_no_split.tokenize("e-mail U.S.A. #1") == [
      "e", "##-", "##mail", "U", "##.", "##S", "##.", "##A", "##.", "#",
      "##1"]
  assert cased.tokenize("e-mail") == ["e", "-", "mail"]
  assert uncased_no_split.convert_tokens_to_ids(["##,", "##!"]) == [
      29623, 29612]


def test_model_garden_positional_split_on_punc_is_refused(fixtures_dir):
  vocab_file = str(fixtures_dir / "vocab" / "uncased_vocab.txt")
  # Model Garden's FullTokenizer(vocab_file, do_lower_case, split_on_punc):
  # the third argument here is ALBERT's spm_model_file.
  with pytest.raises(TypeError, match="third argument is spm_model_file.*"
                     "split_on_punc=False"):
    tokenization.FullTokenizer(vocab_file, True, False)
  with pytest.raises(ValueError, match="split_on_punc=False applies to "
                     "WordPiece only"):
    tokenization.FullTokenizer(None, True, spm_model_file="albert.model",
                               split_on_punc=False)


def test_character_classes_of_astral_characters():
  # A pile of poo (So) is neither control, whitespace nor punctuation.
  for char in ("\U0001f4a9", "\U0001d400"):
    assert not tokenization._is_control(char)  # pylint: disable=protected-access
    assert not tokenization._is_whitespace(char)  # pylint: disable=protected-access
    assert not tokenization._is_punctuation(char)  # pylint: disable=protected-access
  assert tokenization._is_control("\U000e0001")  # pylint: disable=protected-access
  assert tokenization._is_punctuation("\U0001e95e")  # pylint: disable=protected-access
