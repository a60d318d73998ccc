"""FastBertTokenizer gives exactly FullTokenizer's ids, in and out of graphs."""

import os
import random
import unicodedata

import hypothesis
from hypothesis import strategies as st
import numpy as np
import pytest
import tensorflow as tf

from bert_tf import tokenization
from bert_tf.text import FastBertTokenizer
from bert_tf.text import unicode_tables

VOCABS = {
    "uncased": ("uncased_vocab.txt", True),
    "cased": ("cased_vocab.txt", False),
    "chinese": ("chinese_vocab.txt", True),
}
CORPORA = ("wikitext2_valid.tokens", "wikitext2_test.tokens",
           "clue_small_zh.txt", "enwik8_small.txt")


def _tokenizer_pairs(fixtures_dir, split_on_punc):
  """Returns {name: (FastBertTokenizer, FullTokenizer)} for the three vocabs."""
  result = {}
  for name, (file_name, lower) in VOCABS.items():
    path = str(fixtures_dir / "vocab" / file_name)
    result[name] = (
        FastBertTokenizer(path, lower, split_on_punc=split_on_punc),
        tokenization.FullTokenizer(path, lower, split_on_punc=split_on_punc))
  return result


@pytest.fixture(scope="module")
def tokenizers(fixtures_dir):
  return _tokenizer_pairs(fixtures_dir, split_on_punc=True)


@pytest.fixture(scope="module")
def no_split_tokenizers(fixtures_dir):
  """The pairs with Model Garden's split_on_punc=False."""
  return _tokenizer_pairs(fixtures_dir, split_on_punc=False)


def _assert_same_ids(fast, full, texts, batch_size=2048):
  """Asserts fast.tokenize == FullTokenizer's ids for every text (str/bytes)."""
  for start in range(0, len(texts), batch_size):
    batch = texts[start:start + batch_size]
    encoded = [t.encode("utf-8") if isinstance(t, str) else t for t in batch]
    got = fast.tokenize(tf.constant(encoded, tf.string)).to_list()
    for text, ids in zip(batch, got):
      expected = full.convert_tokens_to_ids(full.tokenize(text))
      assert ids == expected, "text %r: tokens %r" % (text, full.tokenize(text))


def _chars(predicate):
  return [chr(c) for c in range(0x110000)
          if not 0xD800 <= c <= 0xDFFF and predicate(chr(c))]


_POOLS = {
    "ascii": [chr(c) for c in range(32, 127)],
    "latin": [chr(c) for c in range(0xC0, 0x250)],
    "cjk": [chr(c) for c in list(range(0x4E00, 0x4E80)) +
            list(range(0xF900, 0xF920)) + list(range(0x2F800, 0x2F820)) +
            list(range(0x3040, 0x3100)) + [0xAC00, 0xD7A3, 0x4DBF, 0x4DC0]],
    "punctuation": _chars(lambda c: unicodedata.category(c).startswith("P")),
    "control": _chars(lambda c: unicodedata.category(c) in ("Cc", "Cf")) +
               ["\x00", "\ufffd"],
    "space": _chars(lambda c: c.isspace()),
    "emoji": [chr(c) for c in range(0x1F300, 0x1F650)] + ["\u200d", "\ufe0f"],
    "mark": _chars(lambda c: unicodedata.category(c) in ("Mn", "Mc", "Me")),
    "greek": [chr(c) for c in range(0x370, 0x400)] + ["\u03a3"] * 20,
    "casing": ["\u0130", "\u01c5", "\u1e9e", "\u2126", "\u212a", "\u00df",
               "\ufb01", "\u0345", "\u1fbc", "\u1f88", "'", ".", "\u00ad",
               "\u03d2", "\U0001d165", "\U0001d16d"],
}


def _random_texts(seed, count, kinds=None):
  """Returns `count` seeded random texts mixing every kind of character.

  Args:
    seed: the seed.
    count: how many texts.
    kinds: the `_POOLS` to draw from (and "any" code point); default all.

  Returns:
    A list of str.
  """
  rng = random.Random(seed)
  kinds = kinds or sorted(_POOLS) + ["any"]

  def char():
    kind = rng.choice(kinds)
    if kind != "any":
      return rng.choice(_POOLS[kind])
    while True:
      c = rng.randrange(0x110000)
      if not 0xD800 <= c <= 0xDFFF:
        return chr(c)

  texts = []
  for _ in range(count):
    parts = []
    for _ in range(rng.choice([0, 1, 2, 5, 10, 20, 40])):
      if rng.random() < 0.1:
        parts.append(rng.choice(
            ["unaffable", "Hello", "\u03a3\u039f\u03a6\u0399\u0391", "running",
             "x" * rng.choice([199, 200, 201, 250]), "\u00e9" * 150]))
      else:
        parts.append(char())
    texts.append("".join(parts))
  return texts


@pytest.mark.parametrize("name", sorted(VOCABS))
def test_random_texts(tokenizers, name):
  fast, full = tokenizers[name]
  _assert_same_ids(fast, full, _random_texts(seed=sorted(VOCABS).index(name),
                                             count=10000))


EDGE_CASES = [
    "", " ", "\t\n\r", "a", "Hello, World!",
    # Final sigma: word end, before case-ignorable marks, after them, alone.
    "\u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03a3 \u03a3 A\u03a3. "
    "A\u03a3'B",
    "A\u03a3\u0301 A\u0301\u03a3 A\u03a3\x00B A\u03a3\u00adB "
    "\u4e00\u03a3A\u03a3\u4e00",
    # Characters Python lower-cases unlike ICU's full case folding.
    "\u0130 \u01c5 \u1e9e \u2126 \u212a \u00df \u1f88 \u03d2 \u0345",
    # NFD reordering of non-Mn combining characters (Mc with ccc > 0).
    "\U0001d16d\U0001d165 a\U0001d16d\u0301\U0001d165\u1715 \u1734\u302e\u302f",
    # Words of 200 / 201 characters; 150 two-byte characters (> 200 bytes).
    "a" * 200, "a" * 201, "\u00e9" * 150, "\u00e9" * 201, "\u4e00" * 300,
    # CJK block edges and compatibility ideographs.
    "x\u4dbfx\u4dc0x\u9fffx\ua000x\u3400x\U0002a6dfx\U0002a6e0x\U0002ceafx"
    "\U0002ceb0x\uf900x\ufaffx\U0002f800x\U0002fa1fx\U0002fa20x",
    # Control and format characters, Zs / Zl / Zp spaces, NUL, U+FFFD.
    "a\x00b\x01c\x7fd\x85e\u200bf\u2028g\u2029h\u00a0i\u3000j\ufffdk\ufeffl",
    "\x1c\x1d\x1e\x1f\x0b\x0c", "\U000e0001\U000e0041 \U000e0100x",
    # Emojis with joiners and variation selectors.
    "\U0001f469\u200d\U0001f4bb \u2764\ufe0f \U0001f1fa\U0001f1f8",
    # Characters assigned in recent Unicode versions (14.0).
    "\u0870\u0897 \U00011f00 \U0001e290 \U0002b739 \U00031350",
    "\ud55c\uad6d\uc5b4 \u30c6\u30b9\u30c8 \u0e20\u0e32\u0e29\u0e32",
    "##a ### a##b #",
    # Special tokens in the text are split like any punctuation.
    "[UNK] [unk] x[UNK]y [CLS] [SEP][MASK] [PAD]",
]


@pytest.mark.parametrize("name", sorted(VOCABS))
def test_edge_cases(tokenizers, name):
  _assert_same_ids(*tokenizers[name], EDGE_CASES)


# Words that start with "#" meet the "##" tokens whole without split_on_punc.
HASH_WORDS = ["##ing ##a #a ##a## # ## ### #x# ##!", "a##b ##.## #\u00e9 ##\u4e00",
              "[UNK] x[UNK]y #[UNK] ##unk## hello!how are you?"]


@pytest.mark.parametrize("name", sorted(VOCABS))
def test_without_punctuation_split(no_split_tokenizers, name):
  fast, full = no_split_tokenizers[name]
  index = sorted(VOCABS).index(name)
  _assert_same_ids(fast, full, EDGE_CASES + HASH_WORDS)
  _assert_same_ids(fast, full, _random_texts(seed=10 + index, count=3000))
  # Printable ASCII texts take the whitespace-split shortcut.
  _assert_same_ids(fast, full, _random_texts(seed=20 + index, count=1000,
                                             kinds=["ascii"]))


@pytest.mark.parametrize("name", sorted(VOCABS))
def test_every_punctuation_control_space_and_mark(tokenizers, name):
  fast, full = tokenizers[name]
  texts = []
  for kind in ("punctuation", "control", "space", "mark"):
    pool = _POOLS[kind]
    texts += ["ab" + c + "Cd" for c in pool]
  _assert_same_ids(fast, full, texts)


def test_every_punctuation_control_space_and_mark_without_split(
    no_split_tokenizers):
  texts = ["ab" + c + "Cd #" + c + "x" for kind in
           ("punctuation", "control", "space", "mark") for c in _POOLS[kind]]
  for name in ("uncased", "cased"):
    _assert_same_ids(*no_split_tokenizers[name], texts)


@pytest.mark.parametrize("name", sorted(VOCABS))
def test_invalid_utf8_is_dropped_like_python(tokenizers, name):
  texts = [b"A\xe4\xb8B", b"\xed\xa0\x80x", b"\xf4\x90\x80\x80y", b"\xc0\xafz",
           b"caf\xc3", b"\xff\xfe", b"a\x80\x80b \xe4\xb8\xad\xe6"]
  _assert_same_ids(*tokenizers[name], texts)


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(texts=st.lists(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
    min_size=1, max_size=16))
def test_hypothesis_uncased(tokenizers, texts):
  _assert_same_ids(*tokenizers["uncased"], texts)


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(texts=st.lists(st.binary(max_size=40), min_size=1,
                                 max_size=16))
def test_hypothesis_bytes_cased(tokenizers, texts):
  _assert_same_ids(*tokenizers["cased"], texts)


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(texts=st.lists(
    st.text(alphabet=st.one_of(
        st.characters(blacklist_categories=("Cs",)),
        st.sampled_from("##.,!?'-[]Aa\u00e9 ")), max_size=40),
    min_size=1, max_size=16))
def test_hypothesis_uncased_without_split(no_split_tokenizers, texts):
  _assert_same_ids(*no_split_tokenizers["uncased"], texts)


def _corpus_lines(fixtures_dir, file_name, step):
  with open(fixtures_dir / "corpora" / file_name, "rb") as f:
    return f.read().split(b"\n")[::step]


@pytest.mark.parametrize("name", sorted(VOCABS))
@pytest.mark.parametrize("file_name", CORPORA)
def test_corpus_subset(tokenizers, fixtures_dir, name, file_name):
  """Every 10th line of each corpus (the full files are a slow test)."""
  _assert_same_ids(*tokenizers[name],
                   _corpus_lines(fixtures_dir, file_name, step=10))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(VOCABS))
@pytest.mark.parametrize("file_name", CORPORA)
def test_corpus_full(tokenizers, fixtures_dir, name, file_name):
  _assert_same_ids(*tokenizers[name],
                   _corpus_lines(fixtures_dir, file_name, step=1))


@pytest.mark.parametrize("name", sorted(VOCABS))
def test_corpus_subset_without_split(no_split_tokenizers, fixtures_dir, name):
  """Every 50th line of each corpus, without the punctuation split."""
  for file_name in CORPORA:
    _assert_same_ids(*no_split_tokenizers[name],
                     _corpus_lines(fixtures_dir, file_name, step=50))


def test_special_ids_and_vocab_size(tokenizers):
  fast, _ = tokenizers["uncased"]
  assert (fast.cls_id, fast.sep_id, fast.pad_id, fast.mask_id,
          fast.unk_id) == (101, 102, 0, 103, 100)
  assert fast.vocab_size == 30522
  assert tokenizers["cased"][0].vocab_size == 28996
  assert tokenizers["chinese"][0].vocab_size == 21128
  assert all(isinstance(getattr(fast, a), int)
             for a in ("cls_id", "sep_id", "pad_id", "mask_id", "unk_id"))


def test_output_type_and_empty_batch(tokenizers):
  fast, _ = tokenizers["uncased"]
  ids = fast.tokenize(tf.constant(["hello world", ""]))
  assert isinstance(ids, tf.RaggedTensor)
  assert ids.dtype == tf.int64
  assert ids.to_list() == [[7592, 2088], []]
  assert fast.tokenize(tf.constant([], tf.string)).to_list() == []


def test_inside_tf_function_and_tf_data(tokenizers):
  fast, full = tokenizers["uncased"]
  texts = ["Hello, World!", "na\u00efve \u03a3\u039f\u03a6\u0399\u0391\u03a3",
           "\u4e2d\u6587", "", "x" * 201]
  expected = [full.convert_tokens_to_ids(full.tokenize(t)) for t in texts]

  @tf.function
  def lengths(batch):
    return fast.tokenize(batch).row_lengths()

  assert lengths(tf.constant(texts)).numpy().tolist() == [
      len(e) for e in expected]

  dataset = tf.data.Dataset.from_tensor_slices(texts).batch(2).map(
      fast.tokenize)
  got = [ids for batch in dataset for ids in batch.to_list()]
  assert got == expected


def test_eager_ops_give_the_same_ids(tokenizers):
  for name in ("uncased", "cased"):
    fast, full = tokenizers[name]
    # ASCII, accents, a capital sigma and a reordering mark (step by step).
    texts = ["Hello, World!", "na\u00efve \u03a3\u039f\u03a6\u0399\u0391\u03a3",
             "\u4e2d\u6587 a\u0328\u0301", "", "x" * 201, "\x00\u200b"]
    got = fast.tokenize_ops(tf.constant(texts)).to_list()
    assert got == [full.convert_tokens_to_ids(full.tokenize(t))
                   for t in texts]
    assert got == fast.tokenize(tf.constant(texts)).to_list()


def _table_arrays(tables):
  """Returns {attribute: array or None} of every table of `tables`.

  Args:
    tables: a `UnicodeTables` or `PreprocessTables`.

  Returns:
    A mapping table's values and splits as two entries; lists as arrays.
  """
  arrays = {}
  for name, table in vars(tables).items():
    if isinstance(table, unicode_tables.MappingTable):
      arrays[name + ".values"] = table.values
      arrays[name + ".splits"] = table.splits
    else:
      arrays[name] = None if table is None else np.asarray(table)
  return arrays


def _load_build_and_get(table_set):
  """Returns the (shipped, freshly built, cached) tables of one table set."""
  if table_set == "preprocess":
    return (unicode_tables.load_preprocess_tables(unicode_tables.TABLE_FILE),
            unicode_tables.PreprocessTables(),
            unicode_tables.get_preprocess_tables())
  mode = (table_set.endswith("_uncased"), table_set.startswith("split_"))
  return (unicode_tables.load_tables(unicode_tables.TABLE_FILE, *mode),
          unicode_tables.UnicodeTables(*mode),
          unicode_tables.get_tables(*mode))


@pytest.mark.parametrize("table_set", [
    "split_uncased", "split_cased", "nosplit_uncased", "nosplit_cased",
    "preprocess"])
def test_shipped_tables_equal_a_fresh_build(table_set):
  shipped, built, cached = _load_build_and_get(table_set)
  # The file must be for this Python's Unicode version, or it is not used.
  assert shipped is not None, (
      "rerun scripts/generate_unicode_tables.py for Unicode %s" %
      unicodedata.unidata_version)
  built = _table_arrays(built)
  for tables in (shipped, cached):
    arrays = _table_arrays(tables)
    assert sorted(arrays) == sorted(built)
    for name, array in arrays.items():
      if built[name] is None:
        assert array is None, name
      else:
        assert array.dtype == built[name].dtype, name
        np.testing.assert_array_equal(array, built[name], err_msg=name)


def test_tables_of_another_unicode_version_are_not_used(tmp_path):
  path = str(tmp_path / "tables.npz")
  with np.load(unicode_tables.TABLE_FILE) as npz:
    arrays = {name: npz[name] for name in npz.files}
  np.savez(path, **dict(arrays, unidata_version=np.array("1.0.0")))
  assert unicode_tables.load_tables(path, True) is None
  assert unicode_tables.load_tables(path, False) is None
  assert unicode_tables.load_tables(path, True, split_on_punc=False) is None
  assert unicode_tables.load_preprocess_tables(path) is None
  missing = str(tmp_path / "missing.npz")
  assert unicode_tables.load_tables(missing, True) is None
  assert unicode_tables.load_preprocess_tables(missing) is None


def test_file_without_preprocess_tables(tmp_path):
  # A file written before the preprocessing tables were added: those are
  # built, the BERT tables still come from the file.
  path = str(tmp_path / "tables.npz")
  with np.load(unicode_tables.TABLE_FILE) as npz:
    arrays = {name: npz[name] for name in npz.files
              if not name.startswith("preprocess_")}
  np.savez(path, **arrays)
  assert unicode_tables.load_preprocess_tables(path) is None
  np.testing.assert_array_equal(
      unicode_tables.load_tables(path, True).basic_code,
      arrays["uncased_basic_code"])


def test_saved_model_round_trip(tokenizers, fixtures_dir, tmp_path):
  fast, full = tokenizers["chinese"]
  export_dir = str(tmp_path / "tokenizer")
  tf.saved_model.save(fast, export_dir)
  assert os.listdir(os.path.join(export_dir, "assets")) == ["chinese_vocab.txt"]
  loaded = tf.saved_model.load(export_dir)
  texts = ["\u6211\u7231\u5317\u4eac\uff01 Hello \u03a3\u03a3", "\u00e9" * 201]
  got = loaded.tokenize(tf.constant(texts)).to_list()
  assert got == [full.convert_tokens_to_ids(full.tokenize(t)) for t in texts]


def test_vocab_with_duplicates_and_whitespace_lines(tmp_path):
  path = tmp_path / "vocab.txt"
  path.write_text(
      "[PAD]\n[UNK]\nab\n##c\n ab \nd\n\u2028\n##\nx\n##c\n[CLS]\n"
      "x y\na.b\n##.\n.\n##c.\n",
      encoding="utf-8")
  fast = FastBertTokenizer(str(path), do_lower_case=True)
  full = tokenization.FullTokenizer(str(path), do_lower_case=True)
  assert full.vocab["ab"] == 4 and full.vocab["##c"] == 9
  _assert_same_ids(fast, full, [
      "abc ab d x abcc q ## #", "AB\u2028D", "x y a.b ab. abc. .", "  ",
      "a.b\u00e9 x y\u00e9"])
  assert (fast.cls_id, fast.sep_id, fast.unk_id, fast.vocab_size) == (
      10, None, 1, 16)


def test_vocab_with_hash_and_punctuation_tokens_without_split(tmp_path):
  # "#" then "###a" for "##a": FastWordpieceTokenizer alone would give [UNK].
  path = tmp_path / "vocab.txt"
  path.write_text(
      "[UNK]\n#\n###\n###a\na.b\n##.\n##!\nb\n#b\n##b#\nx\n##y\n"
      "\ufffd1\n#\ufffd\n\ufffd\n", encoding="utf-8")
  fast = FastBertTokenizer(str(path), do_lower_case=False, split_on_punc=False)
  full = tokenization.FullTokenizer(str(path), do_lower_case=False,
                                    split_on_punc=False)
  assert full.tokenize("##a a.b b. b! ##b# ## ### xy x#b") == [
      "#", "###a", "a.b", "b", "##.", "b", "##!", "##b#", "#", "###", "###",
      "x", "##y", "[UNK]"]
  _assert_same_ids(fast, full, [
      "##a a.b b. b! ##b# ## ### xy x#b", "#b #b# #bb ##b #", "#" * 7,
      "a.b.b b.. #a.b ##y ##yy \u00e9#b ##\u00e9", "#" * 200, "#" * 201])
  assert fast.vocab_size == 15


def test_saved_model_round_trip_without_split(no_split_tokenizers, tmp_path):
  fast, full = no_split_tokenizers["uncased"]
  tf.saved_model.save(fast, str(tmp_path / "tokenizer"))
  loaded = tf.saved_model.load(str(tmp_path / "tokenizer"))
  texts = ["Hello, World! ##ing #hash", "na\u00efve? \u03a3\u03a3."]
  got = loaded.tokenize(tf.constant(texts)).to_list()
  assert got == [full.convert_tokens_to_ids(full.tokenize(t)) for t in texts]


def test_bad_vocab_files_are_named(tmp_path):
  with pytest.raises(ValueError, match="missing.txt.*does not exist"):
    FastBertTokenizer(str(tmp_path / "missing.txt"))
  no_unk = tmp_path / "no_unk.txt"
  no_unk.write_text("[PAD]\na\n", encoding="utf-8")
  with pytest.raises(ValueError, match="no_unk.txt.*no \\[UNK\\]"):
    FastBertTokenizer(str(no_unk))
