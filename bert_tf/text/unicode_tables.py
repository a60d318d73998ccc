"""Per-code-point tables that make in-graph text processing equal to Python's.

`bert_tf.tokenization.BasicTokenizer` decides everything with Python's
`unicodedata` and `str.lower()`. TensorFlow's string ops (RE2 classes, ICU
normalization and case mapping) use other Unicode tables and other case rules,
so the in-graph tokenizer instead looks every code point up in tables built
here, once per process, by asking Python itself.

Table index space. Only code points below U+30000 and the block U+E0000-U+E0FFF
(tags, variation selectors) behave differently from "an ordinary letter that
maps to itself"; `domain_index` folds them into `DOMAIN_SIZE` rows and sends
every other code point to the last row, `IDENTITY_ROW`. `UnicodeTables` checks
that claim against `unicodedata` and fails if a newer Python breaks it.

`basic_code` packs the whole basic step of one code point into an int32 (see
`UnicodeTables`). A mapping table (`MappingTable`) is a ragged table stored as
`values` and `splits` (int32): row r holds `values[splits[r]:splits[r + 1]]`,
the code points that replace a code point of index r. The value `SAME` stands
for the input code point itself, so identity rows need no per-code-point
storage of their own.

Building the tables asks Python about every code point (seconds). They ship
precomputed in `unicode_tables.npz` (written by
`scripts/generate_unicode_tables.py`, checked against a fresh build by the
tests), which `get_tables` and `get_preprocess_tables` load when its Unicode
version is this Python's and otherwise build the tables.
"""

import functools
import os
import unicodedata

import numpy as np

from bert_tf import file_io
from bert_tf import tokenization

# The original keeps its character classes private; they are the reference.
# pylint: disable=protected-access

# Code points [0, PLANE_LIMIT) and [TAGS_START, TAGS_END) have own rows.
PLANE_LIMIT = 0x30000
TAGS_START = 0xE0000
TAGS_END = 0xE1000
IDENTITY_ROW = PLANE_LIMIT + (TAGS_END - TAGS_START)
DOMAIN_SIZE = IDENTITY_ROW + 1
MAX_CODE_POINT = 0x10FFFF

# A value in a mapping table that stands for the input code point.
SAME = -1

SPACE = 0x20
CAPITAL_SIGMA = 0x3A3
FINAL_SIGMA = 0x3C2

# Kinds of `basic_code` entries: entry = delta * KIND_RADIX + kind.
KIND_RADIX = 8
KIND_NORMAL = 0
KIND_DROP = 1
KIND_SPACE = 2
KIND_ISOLATED = 3
KIND_COMPLEX = 4

# Classes of `sigma_class` for Python's Final_Sigma rule of `str.lower()`.
SIGMA_OTHER = 0
SIGMA_CASE_IGNORABLE = 1
SIGMA_CASED = 2

# Bit of `combining_class` marking a character that has a nonzero canonical
# combining class but is not a nonspacing mark (category Mn): only those can
# change order under NFD and survive accent stripping.
REORDERS = 256


def domain_index(code_point):
  """Returns the table row of `code_point` (an int), as the graph does."""
  if code_point < PLANE_LIMIT:
    return code_point
  if TAGS_START <= code_point < TAGS_END:
    return code_point - TAGS_START + PLANE_LIMIT
  return IDENTITY_ROW


def _domain_code_points():
  """Yields (row, code point) for every row but `IDENTITY_ROW`."""
  for code_point in range(PLANE_LIMIT):
    yield code_point, code_point
  for code_point in range(TAGS_START, TAGS_END):
    yield domain_index(code_point), code_point


def _row_code_points():
  """Returns int32 [DOMAIN_SIZE]: the code point of each row (-3 for the last).

  `IDENTITY_ROW` stands for many code points; -3 is none of them and no table
  value.
  """
  rows = np.arange(DOMAIN_SIZE, dtype=np.int32)
  return np.where(rows < PLANE_LIMIT, rows,
                  np.where(rows < IDENTITY_ROW,
                           rows - PLANE_LIMIT + TAGS_START, -3)).astype(
                               np.int32)


# In the table file, a value equal to its row's code point.
_FILE_SOURCE = -2


class MappingTable(object):
  """A ragged code point -> code points table (see the module docstring).

  Attributes:
    values: int32 array, the concatenated rows.
    splits: int32 array [DOMAIN_SIZE + 1]: row r is
      values[splits[r]:splits[r + 1]].
  """

  def __init__(self, rows):
    """Builds the table from `rows`, a list of DOMAIN_SIZE lists of ints."""
    lengths = np.array([len(row) for row in rows], dtype=np.int64)
    self.splits = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    self.values = np.array([v for row in rows for v in row], dtype=np.int32)

  def to_arrays(self):
    """Returns (lengths int8 [DOMAIN_SIZE], deltas int32): a compact form.

    A value equal to its row's code point becomes `_FILE_SOURCE`, then the
    values are stored as differences from the previous one: runs such as
    "A -> a, B -> b, ..." or "ideograph -> space, itself, space" become
    repeated numbers, which compress well.
    """
    lengths = np.diff(self.splits)
    if lengths.max() > np.iinfo(np.int8).max:
      raise ValueError("a mapping row of %d code points does not fit int8" %
                       lengths.max())
    sources = np.repeat(_row_code_points(), lengths)
    marked = np.where(self.values == sources, _FILE_SOURCE, self.values)
    return lengths.astype(np.int8), np.diff(marked, prepend=0).astype(np.int32)

  @classmethod
  def from_arrays(cls, lengths, deltas):
    """Inverts `to_arrays`."""
    table = cls.__new__(cls)
    lengths = lengths.astype(np.int64)
    table.splits = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    marked = np.cumsum(deltas, dtype=np.int64).astype(np.int32)
    sources = np.repeat(_row_code_points(), lengths)
    table.values = np.where(marked == _FILE_SOURCE, sources, marked).astype(
        np.int32)
    return table


def _mapping_arrays(tables, names):
  """Returns {name_lengths, name_deltas: array} of mapping tables `names`."""
  arrays = {}
  for name in names:
    lengths, deltas = getattr(tables, name).to_arrays()
    arrays[name + "_lengths"] = lengths
    arrays[name + "_deltas"] = deltas
  return arrays


def _set_mappings(tables, arrays, names):
  """Inverts `_mapping_arrays`: sets the attributes `names` of `tables`."""
  for name in names:
    setattr(tables, name, MappingTable.from_arrays(
        arrays[name + "_lengths"], arrays[name + "_deltas"]))


def _row(code_point, output):
  """Returns the table row for `code_point` -> `output` (code point list)."""
  return [SAME] if output == [code_point] else output


def _clean_output(code_point):
  """What `_clean_text` and `_tokenize_chinese_chars` make of one code point.

  Zl and Zp are not whitespace to `_clean_text`, but `str.split()` splits on
  them, so they act as a space.
  """
  char = chr(code_point)
  if (code_point == 0 or code_point == 0xFFFD or
      tokenization._is_control(char)):
    return []
  if tokenization._is_whitespace(char) or char.isspace():
    return [SPACE]
  if tokenization.is_cjk_code_point(code_point):
    return [SPACE, code_point, SPACE]
  return [code_point]


def _lower_output(code_point):
  """`str.lower()` then NFD of one code point (Final_Sigma aside)."""
  return [ord(c) for c in unicodedata.normalize("NFD", chr(code_point).lower())]


def _split_output(code_point, do_lower_case, split_on_punc):
  """Accent stripping (lower casing only) and punctuation split of a char."""
  char = chr(code_point)
  if do_lower_case and unicodedata.category(char) == "Mn":
    return []
  if split_on_punc and tokenization._is_punctuation(char):
    return [SPACE, code_point, SPACE]
  return [code_point]


def _sigma_class(char):
  """Classifies `char` for Python's Final_Sigma rule by probing `str.lower()`.

  "A\u03a3X" lowers the sigma to the non-final form iff X is cased and not case
  ignorable; "AX\u03a3" gives the final form iff X is skipped (case ignorable)
  or cased.
  """
  if ("A\u03a3" + char).lower()[1] == "\u03c3":
    return SIGMA_CASED
  if ("A" + char + "\u03a3").lower()[-1] == "\u03c2":
    return SIGMA_CASE_IGNORABLE
  return SIGMA_OTHER


def _check_identity_outside_domain(do_lower_case, split_on_punc):
  """Raises if a code point outside the domain is not a plain identity."""
  for code_point in range(PLANE_LIMIT, MAX_CODE_POINT + 1):
    if TAGS_START <= code_point < TAGS_END:
      continue
    char = chr(code_point)
    category = unicodedata.category(char)
    if category in ("Cn", "Co"):
      continue
    plain = (category == "Lo" and _clean_output(code_point) == [code_point] and
             _split_output(code_point, do_lower_case, split_on_punc) ==
             [code_point])
    if do_lower_case:
      plain = (plain and _lower_output(code_point) == [code_point] and
               _sigma_class(char) == SIGMA_OTHER and
               unicodedata.combining(char) == 0)
    if not plain:
      raise AssertionError(
          "U+%04X (category %s) needs its own table row: this Python's "
          "unicodedata %s is newer than bert_tf.text.unicode_tables expects." %
          (code_point, category, unicodedata.unidata_version))


def _code(code_point, output, needs_context):
  """Packs a code point's basic-step `output` into a `basic_code` entry."""
  if needs_context:
    return KIND_COMPLEX
  if not output:
    return KIND_DROP
  if output == [SPACE]:
    return KIND_SPACE
  if len(output) == 1:
    return (output[0] - code_point) * KIND_RADIX + KIND_NORMAL
  if len(output) == 3 and output[0] == output[2] == SPACE != output[1]:
    return (output[1] - code_point) * KIND_RADIX + KIND_ISOLATED
  return KIND_COMPLEX


class UnicodeTables(object):
  """The tables of one casing and punctuation mode, indexed by `domain_index`.

  Attributes:
    basic_code: int32 array, the whole basic step of one code point as
      `delta * KIND_RADIX + kind`: KIND_NORMAL / KIND_ISOLATED (a word of its
      own) code points become `code point + delta`, KIND_DROP ones vanish,
      KIND_SPACE ones separate words, and KIND_COMPLEX ones (several output
      characters, or context: capital sigma, NFD reordering) need the
      step-by-step tables below.
    clean: MappingTable or None, text cleaning and spaces around CJK
      ideographs (lower casing only, like the rest).
    lower: MappingTable or None, `str.lower()` + NFD.
    split: MappingTable or None, per code point of the lower-cased text: Mn
      dropped, spaces around punctuation (`split_on_punc`).
    sigma_class: int8 array or None, SIGMA_* class of each code point.
    combining_class: int16 array or None, canonical combining class, plus
      REORDERS for the characters that can be reordered visibly.
  """

  def __init__(self, do_lower_case, split_on_punc=True):
    """Builds the tables from Python's `unicodedata` and `str.lower()`.

    Args:
      do_lower_case: whether the tables are for a lower-casing tokenizer.
      split_on_punc: whether punctuation characters are words of their own
        (`BasicTokenizer`'s `split_on_punc`).
    """
    _check_identity_outside_domain(do_lower_case, split_on_punc)
    basic_code = np.zeros([DOMAIN_SIZE], dtype=np.int32)
    clean_rows = [[SAME]] * DOMAIN_SIZE
    lower_rows = [[SAME]] * DOMAIN_SIZE
    split_rows = [[SAME]] * DOMAIN_SIZE
    sigma_class = np.zeros([DOMAIN_SIZE], dtype=np.int8)
    combining_class = np.zeros([DOMAIN_SIZE], dtype=np.int16)
    for row, code_point in _domain_code_points():
      if 0xD800 <= code_point <= 0xDFFF:
        continue  # Surrogates never come out of UTF-8 decoding.
      cleaned = _clean_output(code_point)
      if not do_lower_case:
        output = [c for l in cleaned
                  for c in _split_output(l, False, split_on_punc)]
        basic_code[row] = _code(code_point, output, False)
        continue
      lowered = [l for c in cleaned for l in _lower_output(c)]
      output = [c for l in lowered
                for c in _split_output(l, True, split_on_punc)]
      needs_context = code_point == CAPITAL_SIGMA or any(
          unicodedata.combining(chr(c)) and unicodedata.category(chr(c)) != "Mn"
          for c in lowered)
      basic_code[row] = _code(code_point, output, needs_context)
      clean_rows[row] = _row(code_point, cleaned)
      lower_rows[row] = _row(code_point, _lower_output(code_point))
      split_rows[row] = _row(code_point,
                             _split_output(code_point, True, split_on_punc))
      char = chr(code_point)
      sigma_class[row] = _sigma_class(char)
      ccc = unicodedata.combining(char)
      combining_class[row] = ccc
      if ccc and unicodedata.category(char) != "Mn":
        combining_class[row] += REORDERS
    self.basic_code = basic_code
    if do_lower_case:
      self.clean = MappingTable(clean_rows)
      self.lower = MappingTable(lower_rows)
      self.split = MappingTable(split_rows)
      self.sigma_class = sigma_class
      self.combining_class = combining_class
    else:
      self.clean = self.lower = self.split = None
      self.sigma_class = self.combining_class = None


  def to_arrays(self):
    """Returns a dict of name -> numpy array holding these tables."""
    arrays = {"basic_code": self.basic_code}
    if self.clean is not None:
      arrays.update(_mapping_arrays(self, _MAPPING_NAMES))
      arrays["sigma_class"] = self.sigma_class
      arrays["combining_class"] = self.combining_class
    return arrays

  @classmethod
  def from_arrays(cls, arrays):
    """Inverts `to_arrays`: the tables without building them."""
    tables = cls.__new__(cls)
    tables.basic_code = arrays["basic_code"]
    if "clean_lengths" in arrays:
      _set_mappings(tables, arrays, _MAPPING_NAMES)
      tables.sigma_class = arrays["sigma_class"]
      tables.combining_class = arrays["combining_class"]
    else:
      tables.clean = tables.lower = tables.split = None
      tables.sigma_class = tables.combining_class = None
    return tables


def _check_preprocess_identity_outside_domain():
  """Raises if `preprocess_text` changes a code point outside the domain."""
  for code_point in range(PLANE_LIMIT, MAX_CODE_POINT + 1):
    if TAGS_START <= code_point < TAGS_END:
      continue
    char = chr(code_point)
    if unicodedata.category(char) in ("Cn", "Co"):
      continue
    if (char.isspace() or char.isdigit() or unicodedata.combining(char) or
        unicodedata.normalize("NFKD", char) != char or char.lower() != char or
        _sigma_class(char) != SIGMA_OTHER):
      raise AssertionError(
          "U+%04X needs its own preprocessing table row: this Python's "
          "unicodedata %s is newer than bert_tf.text.unicode_tables expects." %
          (code_point, unicodedata.unidata_version))


class PreprocessTables(object):
  """ALBERT's `preprocess_text` per code point, as numpy arrays.

  `" ".join(text.split())` needs only which characters are whitespace; NFKD
  followed by dropping the combining characters is a per-code-point mapping
  (canonical reordering only moves combining characters, which are all
  dropped); `str.lower()` is per code point but for the capital sigma.

  Attributes:
    is_space: bool array [DOMAIN_SIZE], `str.isspace()`.
    nfkd: MappingTable, NFKD of the code point without combining characters.
    lower: MappingTable, `str.lower()` of the code point.
    sigma_class: int8 array [DOMAIN_SIZE], SIGMA_* class of each code point.
    digits: sorted list of the code points for which `str.isdigit()`.
  """

  def __init__(self):
    _check_preprocess_identity_outside_domain()
    self.is_space = np.zeros([DOMAIN_SIZE], dtype=bool)
    nfkd_rows = [[SAME]] * DOMAIN_SIZE
    lower_rows = [[SAME]] * DOMAIN_SIZE
    self.sigma_class = np.zeros([DOMAIN_SIZE], dtype=np.int8)
    self.digits = []
    for row, code_point in _domain_code_points():
      if 0xD800 <= code_point <= 0xDFFF:
        continue  # Surrogates never come out of UTF-8 decoding.
      char = chr(code_point)
      self.is_space[row] = char.isspace()
      if char.isdigit():
        self.digits.append(code_point)
      decomposed = unicodedata.normalize("NFKD", char)
      nfkd_rows[row] = _row(code_point, [
          ord(c) for c in decomposed if not unicodedata.combining(c)])
      lower_rows[row] = _row(code_point, [ord(c) for c in char.lower()])
      self.sigma_class[row] = _sigma_class(char)
    self.nfkd = MappingTable(nfkd_rows)
    self.lower = MappingTable(lower_rows)

  def to_arrays(self):
    """Returns a dict of name -> numpy array holding these tables."""
    arrays = {"is_space": self.is_space, "sigma_class": self.sigma_class,
              "digits": np.array(self.digits, dtype=np.int32)}
    arrays.update(_mapping_arrays(self, _PREPROCESS_MAPPING_NAMES))
    return arrays

  @classmethod
  def from_arrays(cls, arrays):
    """Inverts `to_arrays`: the tables without building them."""
    tables = cls.__new__(cls)
    tables.is_space = arrays["is_space"]
    tables.sigma_class = arrays["sigma_class"]
    tables.digits = arrays["digits"].tolist()
    _set_mappings(tables, arrays, _PREPROCESS_MAPPING_NAMES)
    return tables


# The mapping tables of `UnicodeTables` (lower casing) and `PreprocessTables`.
_MAPPING_NAMES = ("clean", "lower", "split")
_PREPROCESS_MAPPING_NAMES = ("nfkd", "lower")

# The precomputed tables shipped with the package.
TABLE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "unicode_tables.npz")


# Key prefix in the table file of each table set, and how to build it (no
# prefix is the start of another).
_TABLE_SETS = {
    "uncased_": (UnicodeTables, lambda: UnicodeTables(True)),
    "cased_": (UnicodeTables, lambda: UnicodeTables(False)),
    "nosplit_uncased_": (UnicodeTables, lambda: UnicodeTables(True, False)),
    "nosplit_cased_": (UnicodeTables, lambda: UnicodeTables(False, False)),
    "preprocess_": (PreprocessTables, PreprocessTables),
}


def _tokenizer_prefix(do_lower_case, split_on_punc):
  """The `_TABLE_SETS` key of the `UnicodeTables` of one mode."""
  return (("" if split_on_punc else "nosplit_") +
          ("uncased_" if do_lower_case else "cased_"))


def save_tables(path):
  """Builds every table set into `path`: the tokenizer modes, preprocessing.

  The file (numpy `.npz`, compressed) records this Python's
  `unicodedata.unidata_version`; `load_tables` and `load_preprocess_tables`
  use it only under the same version.

  Args:
    path: the file to write (written under a temporary name, then renamed).
  """
  arrays = {"unidata_version": np.array(unicodedata.unidata_version)}
  for prefix, (_, build) in _TABLE_SETS.items():
    for name, array in build().to_arrays().items():
      arrays[prefix + name] = array
  with file_io.atomic_path(path) as temp:
    with open(temp, "wb") as f:  # A file object: NumPy adds no ".npz".
      np.savez_compressed(f, **arrays)


def _load_table_set(path, prefix):
  """Reads the table set under key `prefix` from a `save_tables` file.

  Args:
    path: the file.
    prefix: a key of `_TABLE_SETS`.

  Returns:
    The tables (of the class `_TABLE_SETS` names), or None when the file is
    missing, lacks the set or was built under another Unicode version than
    this Python's.
  """
  if not os.path.exists(path):
    return None
  with np.load(path) as npz:
    if str(npz["unidata_version"]) != unicodedata.unidata_version:
      return None
    arrays = {name[len(prefix):]: npz[name] for name in npz.files
              if name.startswith(prefix)}
  return _TABLE_SETS[prefix][0].from_arrays(arrays) if arrays else None


def load_tables(path, do_lower_case, split_on_punc=True):
  """Reads the tables of one mode from a `save_tables` file.

  Args:
    path: the file.
    do_lower_case: which casing mode.
    split_on_punc: which punctuation mode.

  Returns:
    The `UnicodeTables`, or None (see `_load_table_set`).
  """
  return _load_table_set(path, _tokenizer_prefix(do_lower_case, split_on_punc))


def load_preprocess_tables(path):
  """Reads the `PreprocessTables` from a `save_tables` file.

  Args:
    path: the file.

  Returns:
    The `PreprocessTables`, or None (see `_load_table_set`).
  """
  return _load_table_set(path, "preprocess_")


@functools.lru_cache(maxsize=4)
def get_tables(do_lower_case, split_on_punc=True):
  """Returns the (cached) `UnicodeTables` of one casing and punctuation mode.

  From `TABLE_FILE` when it matches this Python's Unicode version, else built.
  """
  mode = (bool(do_lower_case), bool(split_on_punc))
  return load_tables(TABLE_FILE, *mode) or UnicodeTables(*mode)


@functools.lru_cache(maxsize=1)
def get_preprocess_tables():
  """Returns the (cached) `PreprocessTables`.

  From `TABLE_FILE` when it matches this Python's Unicode version, else built.
  """
  return load_preprocess_tables(TABLE_FILE) or PreprocessTables()
