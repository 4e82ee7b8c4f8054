"""Row parsers for the MovieLens file layouts we accept.

Three layouts carry the same three tables (interactions, items, users):
  * `recbole`: the registry package's copy of ML-100K (`ml-100k.inter`, `.item`,
    `.user`; tab-separated, typed header line, UTF-8).
  * `ml-100k`: GroupLens's original ML-100K (`u.data` tab-separated,
    `u.item` and `u.user` pipe-separated, Latin-1).
  * `ml-1m`: GroupLens's ML-1M and larger `::` files (`ratings.dat`,
    `movies.dat`, `users.dat`, Latin-1).
Each parser turns one raw line (bytes) into a plain record or raises RowError
with a reason a person can act on; the Beam executor routes those to the
rejects file. Nothing here imports Beam or TensorFlow, so it is tested alone.
"""
import dataclasses
import functools
import math
import os
import re
import time
import unicodedata
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

from trainer import features


class RowError(ValueError):
  """A raw row that cannot become a record; the message is the reason."""


class Interaction(NamedTuple):
  user_id: str
  item_id: str
  rating: float
  timestamp: int


class Item(NamedTuple):
  item_id: str
  title: str
  year: int
  genres: Tuple[str, ...]


class User(NamedTuple):
  user_id: str
  age: int
  gender: str
  occupation: str


# ML-1M stores occupations as codes; its README lists them in this order.
ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin",
    "college/grad student", "customer service", "doctor/health care",
    "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer",
    "programmer", "retired", "sales/marketing", "scientist", "self-employed",
    "technician/engineer", "tradesman/craftsman", "unemployed", "writer")

_TITLE_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")
_GENRES = frozenset(features.GENRE_VOCAB)
# Plausible interaction times, Unix seconds. MovieLens' ratings start in
# 1995 (ML-25M) and none lies in the future: a row outside the window is a
# typo or a placeholder (0, 5, 8.8e99), and kept it would move the time
# split. MAX None: now plus a day, read when the row is parsed.
MIN_TIMESTAMP = 788918400  # 1995-01-01
MAX_TIMESTAMP: Optional[int] = None
MAX_AGE = 120
_INT64_MAX = 2**63 - 1


@dataclasses.dataclass(frozen=True)
class TimestampWindow:
  """Inclusive bounds on interaction timestamps (see MIN_TIMESTAMP)."""
  low: int = MIN_TIMESTAMP
  high: Optional[int] = MAX_TIMESTAMP

  def check(self, timestamp: int) -> int:
    high = self.high if self.high is not None else int(time.time()) + 86400
    if not self.low <= timestamp <= high:
      raise RowError(
          f"timestamp {timestamp} outside the plausible window "
          f"[{self.low}, {high}] ({_date(self.low)} to {_date(high)}; "
          "see --min-timestamp/--max-timestamp)")
    return timestamp


def _date(seconds: int) -> str:
  return time.strftime("%Y-%m-%d", time.gmtime(seconds))


def _decode(line: bytes, encoding: str) -> str:
  try:
    return line.decode(encoding).rstrip("\r\n")
  except UnicodeDecodeError as e:
    raise RowError(f"bad {encoding} encoding at byte {e.start}") from None


def _fields(line: bytes, encoding: str, sep: str, count: int) -> List[str]:
  text = _decode(line, encoding)
  fields = text.split(sep)
  if len(fields) != count:
    raise RowError(f"expected {count} columns separated by {sep!r}, "
                   f"got {len(fields)}")
  return [f.strip() for f in fields]


def _number(value: str, name: str, kind: Callable):
  """A finite number (ints within int64), or RowError saying why not."""
  try:
    number = float(value)
  except ValueError:
    raise RowError(f"{name} is not a number: {value[:40]!r}") from None
  if not math.isfinite(number):
    raise RowError(f"{name} is not finite: {value[:40]!r}")
  if kind is not int:
    return number
  if abs(number) > _INT64_MAX:
    raise RowError(f"{name} out of range: {value[:40]!r}")
  return int(number)


def _id(value: str, name: str) -> str:
  if not value:
    raise RowError(f"empty {name}")
  if any(unicodedata.category(c) in ("Cc", "Cf") for c in value):
    raise RowError(f"control character in {name}: {value[:40]!r}")
  return value


def _interaction(user: str, item: str, rating: str, ts: str,
                 window: TimestampWindow = TimestampWindow()) -> Interaction:
  r = _number(rating, "rating", float)
  if not 0.5 <= r <= 5.0:
    raise RowError(f"rating {r} outside [0.5, 5]")
  return Interaction(_id(user, "user_id"), _id(item, "item_id"), r,
                     window.check(_number(ts, "timestamp", int)))


def _checked_genres(genres: List[str]) -> Tuple[str, ...]:
  unknown = [g for g in genres if g not in _GENRES]
  if unknown:
    raise RowError(f"unknown genre {unknown[0]!r}")
  if not genres:
    raise RowError("no genre")
  return tuple(genres)


def _title(value: str) -> str:
  if not value.strip():
    raise RowError("no title")
  return value


def _year(value: str) -> int:
  """Release year, or features.UNKNOWN_YEAR for the few items without one."""
  return int(value) if re.fullmatch(r"\d{4}", value) else features.UNKNOWN_YEAR


def _split_title_year(text: str) -> Tuple[str, int]:
  match = _TITLE_YEAR.match(text)
  if match:
    return match.group(1), int(match.group(2))
  return text, features.UNKNOWN_YEAR


def _user(user: str, age: str, gender: str, occupation: str) -> User:
  if gender not in features.GENDER_VOCAB:
    raise RowError(f"gender {gender!r} not in {features.GENDER_VOCAB}")
  years = _number(age, "age", int)
  if not 0 <= years <= MAX_AGE:
    raise RowError(f"age {years} outside [0, {MAX_AGE}]")
  return User(_id(user, "user_id"), years, gender,
              _id(occupation, "occupation"))


# --- recbole layout ---------------------------------------------------------

def recbole_interaction(line: bytes,
                        window: TimestampWindow = TimestampWindow()
                        ) -> Interaction:
  return _interaction(*_fields(line, "utf-8", "\t", 4), window=window)


def recbole_item(line: bytes) -> Item:
  item, title, year, genres = _fields(line, "utf-8", "\t", 4)
  return Item(_id(item, "item_id"), _title(title), _year(year),
              _checked_genres(genres.split()))


def recbole_user(line: bytes) -> User:
  user, age, gender, occupation, _ = _fields(line, "utf-8", "\t", 5)
  return _user(user, age, gender, occupation)


# --- original ML-100K layout ------------------------------------------------

# u.data has the same four tab-separated columns as the recbole copy.
ml100k_interaction = recbole_interaction


def ml100k_item(line: bytes) -> Item:
  cols = _fields(line, "latin-1", "|", 5 + len(features.GENRE_VOCAB))
  title, year = _split_title_year(cols[1])
  flags = cols[5:]
  if any(f not in ("0", "1") for f in flags):
    raise RowError("genre flags must be 0 or 1")
  genres = [g for g, f in zip(features.GENRE_VOCAB, flags) if f == "1"]
  return Item(_id(cols[0], "item_id"), _title(title), year,
              _checked_genres(genres))


def ml100k_user(line: bytes) -> User:
  user, age, gender, occupation, _ = _fields(line, "latin-1", "|", 5)
  return _user(user, age, gender, occupation)


# --- ML-1M layout -----------------------------------------------------------

def ml1m_interaction(line: bytes,
                     window: TimestampWindow = TimestampWindow()
                     ) -> Interaction:
  return _interaction(*_fields(line, "latin-1", "::", 4), window=window)


def ml1m_item(line: bytes) -> Item:
  item, title_year, genres = _fields(line, "latin-1", "::", 3)
  title, year = _split_title_year(title_year)
  return Item(_id(item, "item_id"), _title(title), year,
              _checked_genres(genres.split("|")))


def ml1m_user(line: bytes) -> User:
  user, gender, age, code, _ = _fields(line, "latin-1", "::", 5)
  index = _number(code, "occupation", int)
  if not 0 <= index < len(ML1M_OCCUPATIONS):
    raise RowError(f"occupation code {index} unknown")
  return _user(user, age, gender, ML1M_OCCUPATIONS[index])


@dataclasses.dataclass(frozen=True)
class Table:
  """One input file and how to parse its lines."""
  filename: str
  parse: Callable[[bytes], object]
  header_lines: int = 0


@dataclasses.dataclass(frozen=True)
class Layout:
  name: str
  interactions: Table
  items: Table
  users: Table

  def tables(self) -> Dict[str, Table]:
    return {"interactions": self.interactions, "items": self.items,
            "users": self.users}

  def with_window(self, window: TimestampWindow) -> "Layout":
    """This layout with interaction timestamps checked against `window`."""
    table = dataclasses.replace(self.interactions, parse=functools.partial(
        self.interactions.parse, window=window))
    return dataclasses.replace(self, interactions=table)


LAYOUTS = {
    "recbole": Layout(
        "recbole",
        Table("ml-100k.inter", recbole_interaction, header_lines=1),
        Table("ml-100k.item", recbole_item, header_lines=1),
        Table("ml-100k.user", recbole_user, header_lines=1)),
    "ml-100k": Layout(
        "ml-100k",
        Table("u.data", ml100k_interaction),
        Table("u.item", ml100k_item),
        Table("u.user", ml100k_user)),
    "ml-1m": Layout(
        "ml-1m",
        Table("ratings.dat", ml1m_interaction),
        Table("movies.dat", ml1m_item),
        Table("users.dat", ml1m_user)),
}


def read_rows(data_dir: str, table: Table, open_file: Callable = open
              ) -> Tuple[list, List[Tuple[str, str]]]:
  """One table parsed outside Beam (replay, catalogue refresh): (rows,
  [(reason, raw row)] for each malformed line); blank lines are skipped.

  open_file: opens a path for binary reading (tf.io.gfile.GFile for GCS).
  """
  with open_file(os.path.join(data_dir, table.filename), "rb") as f:
    lines = f.read().splitlines()[table.header_lines:]
  rows, rejected = [], []
  for line in lines:
    if not line.strip():
      continue
    try:
      rows.append(table.parse(line))
    except RowError as e:
      rejected.append((str(e), line.decode("utf-8", "replace")))
  return rows, rejected


def detect_layout(data_dir: str, exists: Optional[Callable[[str], bool]] = None
                  ) -> Layout:
  """Picks the layout whose interaction file is present in `data_dir`."""
  exists = exists or os.path.exists
  for layout in LAYOUTS.values():
    if exists(os.path.join(data_dir, layout.interactions.filename)):
      return layout
  expected = ", ".join(f"{l.interactions.filename} ({l.name})"
                       for l in LAYOUTS.values())
  raise FileNotFoundError(
      f"No MovieLens interaction file in {data_dir!r}; expected one of: "
      f"{expected}. Run `recsys data fetch` to get MovieLens 100K.")
