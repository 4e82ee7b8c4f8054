"""Row parsers for the recbole, original ML-100K and ML-1M layouts."""
import math

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from components.movielens_example_gen import layouts
from trainer import features


def test_recbole_rows():
  assert layouts.recbole_interaction(b"196\t242\t3\t881250949\n") == \
      layouts.Interaction("196", "242", 3.0, 881250949)
  item = layouts.recbole_item(
      b"1\tToy Story\t1995\tAnimation Children's Comedy\n")
  assert item == layouts.Item("1", "Toy Story", 1995,
                              ("Animation", "Children's", "Comedy"))
  assert layouts.recbole_user(b"1\t24\tM\ttechnician\t85711\n") == \
      layouts.User("1", 24, "M", "technician")


def test_recbole_quirks_keep_the_item():
  # Item 267 is "unkonwn" with no year; 1412 has year "V".
  assert layouts.recbole_item(b"267\tunkonwn\tunkonwn\tunknown\n").year == \
      features.UNKNOWN_YEAR
  assert layouts.recbole_item(b"1412\tLand Before Time III\tV\tAnimation\n"
                             ).year == features.UNKNOWN_YEAR


def test_original_ml100k_rows():
  flags = ["0"] * len(features.GENRE_VOCAB)
  flags[features.GENRE_VOCAB.index("Animation")] = "1"
  flags[features.GENRE_VOCAB.index("Comedy")] = "1"
  line = ("1|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join(flags)
          ).encode("latin-1")
  assert layouts.ml100k_item(line) == layouts.Item(
      "1", "Toy Story", 1995, ("Animation", "Comedy"))
  assert layouts.ml100k_item("2|Café (1994)|||x|".encode("latin-1") +
                             "|".join(flags).encode()).title == "Café"
  assert layouts.ml100k_interaction(b"196\t242\t3\t881250949") == \
      layouts.Interaction("196", "242", 3.0, 881250949)
  assert layouts.ml100k_user(b"1|24|M|technician|85711") == \
      layouts.User("1", 24, "M", "technician")


def test_ml1m_rows():
  assert layouts.ml1m_interaction(b"1::1193::5::978300760") == \
      layouts.Interaction("1", "1193", 5.0, 978300760)
  assert layouts.ml1m_item(b"1::Toy Story (1995)::Animation|Children's|Comedy"
                          ) == layouts.Item(
                              "1", "Toy Story", 1995,
                              ("Animation", "Children's", "Comedy"))
  assert layouts.ml1m_user(b"1::F::1::10::48067") == \
      layouts.User("1", 1, "F", "K-12 student")


@pytest.mark.parametrize("parse,line,reason", [
    (layouts.recbole_interaction, b"1\t2\t3\n", "expected 4 columns"),
    (layouts.recbole_interaction, b"1\t2\tgood\t881250949\n",
     "rating is not a number"),
    (layouts.recbole_interaction, b"1\t2\t9\t881250949\n", "outside"),
    (layouts.recbole_interaction, b"1\t2\t3\tyesterday\n",
     "timestamp is not a number"),
    (layouts.recbole_interaction, b"\t2\t3\t881250949\n", "empty user_id"),
    (layouts.recbole_item, b"5\tX\t1995\tAction Cooking\n",
     "unknown genre 'Cooking'"),
    (layouts.recbole_item, b"5\t\xff\xfeX\t1995\tAction\n", "bad utf-8"),
    (layouts.recbole_item, b"5\t \t1995\tAction\n", "no title"),
    (layouts.recbole_item, b"5\tX\t1995\t\n", "no genre"),
    (layouts.ml1m_item, b"5:: (1995)::Drama", "no title"),
    (layouts.recbole_user, b"1\t24\tX\ttechnician\t85711\n", "gender"),
    (layouts.ml1m_user, b"1::F::1::99::48067", "occupation code 99"),
    # Hostile numbers: non-finite, overflowing, out of the plausible window.
    (layouts.recbole_interaction, b"1\t2\t3\tinf\n", "not finite"),
    (layouts.recbole_interaction, b"1\t2\t3\tnan\n", "not finite"),
    (layouts.recbole_interaction, b"1\t2\t3\t1e400\n", "not finite"),
    (layouts.recbole_interaction, b"1\t2\t3\t8.8e99\n", "out of range"),
    (layouts.recbole_interaction, b"1\t2\t3\t5\n", "plausible window"),
    (layouts.recbole_interaction, b"1\t2\t3\t-1\n", "plausible window"),
    (layouts.recbole_interaction, b"1\t2\t3\t4102444800\n",  # 2100
     "plausible window"),
    (layouts.recbole_interaction, b"1\t2\tnan\t881250949\n", "not finite"),
    (layouts.recbole_interaction, b"1\x07\t2\t3\t881250949\n",
     "control character in user_id"),
    (layouts.recbole_user, b"1\t-4\tM\ttechnician\t85711\n", "age -4"),
    (layouts.recbole_user, b"1\t1e308\tM\ttechnician\t85711\n", "age"),
])
def test_malformed_rows_name_the_reason(parse, line, reason):
  with pytest.raises(layouts.RowError, match=reason):
    parse(line)


def test_timestamp_window_is_configurable():
  old = b"1\t2\t3\t100\n"
  with pytest.raises(layouts.RowError, match="1995-01-01"):
    layouts.recbole_interaction(old)
  assert layouts.recbole_interaction(
      old, layouts.TimestampWindow(0)).timestamp == 100
  window = layouts.TimestampWindow(0, 1000)
  layout = layouts.LAYOUTS["recbole"].with_window(window)
  with pytest.raises(layouts.RowError, match="1970-01-01"):
    layout.interactions.parse(b"1\t2\t3\t1001\n")


_PARSERS = [table.parse for layout in layouts.LAYOUTS.values()
            for table in layout.tables().values()]
# Lines built from the pieces real rows are made of, plus arbitrary bytes.
_PIECES = st.sampled_from([
    b"\t", b"|", b"::", b"1", b"0", b"-", b".", b"e", b"5", b"881250949",
    b"inf", b"nan", b"1e400", b"8.8e99", b"Toy Story (1995)", b"Drama",
    b"Action|Comedy", b"M", b"F", b"writer", b"\xff", b"\x00", b"\x07",
    b"\r", b" ", b"(", b")", b"unknown"])
_LINES = st.one_of(st.binary(max_size=120),
                   st.lists(_PIECES, max_size=14).map(b"".join))


@settings(max_examples=400, deadline=None, derandomize=True)
@given(line=_LINES, parser=st.sampled_from(_PARSERS))
def test_any_bytes_parse_or_give_a_reason(line, parser):
  """Property: every parser, every line: a record or a RowError, nothing
  else; what parses is finite and in range."""
  try:
    row = parser(line)
  except layouts.RowError as e:
    assert str(e)
    return
  if isinstance(row, layouts.Interaction):
    assert math.isfinite(row.rating) and 0.5 <= row.rating <= 5
    assert layouts.MIN_TIMESTAMP <= row.timestamp < 2**63
  elif isinstance(row, layouts.User):
    assert 0 <= row.age <= layouts.MAX_AGE


def test_detect_layout(tmp_path):
  (tmp_path / "u.data").write_text("1\t2\t3\t4\n")
  assert layouts.detect_layout(str(tmp_path)).name == "ml-100k"
  with pytest.raises(FileNotFoundError, match="recsys data fetch"):
    layouts.detect_layout(str(tmp_path / "empty"))
