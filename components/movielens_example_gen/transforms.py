"""Beam transforms that turn raw MovieLens tables into training examples.

Everything that grows with the data (parsing, the join with the item and user
tables, each user's history, the time split) is a Beam transform, so the same
code runs on the DirectRunner or on Dataflow/Flink/Spark workers. The item and
user tables are small and become side inputs; interactions are grouped by user
so a user's history is built on one worker without a global sort.
"""
import os
import uuid
import zlib
from typing import Dict, Iterable, List, Optional, Tuple

import apache_beam as beam
import tensorflow as tf

from components.movielens_example_gen import layouts
from trainer import features

REJECTS_TAG = "rejects"
# WriteInCanonicalOrder: at most this many records per file (each file is
# sorted in one worker's memory; ~300 bytes a MovieLens record).
RECORDS_PER_SHARD = 500_000


def _reject(table: str, where: str, reason: str, raw: str) -> Tuple:
  """(table, source, reason, raw text): one row of the rejects file."""
  return (table, where, reason, raw[:500])


class ParseTable(beam.PTransform):
  """Reads one table's lines and parses them; bad lines go to REJECTS_TAG."""

  def __init__(self, table_name: str, path: str, table: layouts.Table):
    super().__init__()
    self._name, self._path, self._table = table_name, path, table

  def expand(self, pbegin):
    name, parse = self._name, self._table.parse

    def parse_line(line: bytes):
      try:
        yield parse(line)
      except layouts.RowError as e:
        yield beam.pvalue.TaggedOutput(
            REJECTS_TAG, _reject(
                name, self._path, str(e),
                line.decode("utf-8", "replace").rstrip("\r\n")))

    lines = pbegin | f"Read{name}" >> beam.io.ReadFromText(
        self._path, coder=beam.coders.BytesCoder(),
        skip_header_lines=self._table.header_lines)
    return (lines
            | f"DropBlank{name}" >> beam.Filter(lambda l: l.strip())
            | f"Parse{name}" >> beam.FlatMap(parse_line).with_outputs(
                REJECTS_TAG, main="rows"))


def join_tables(inter: layouts.Interaction, items: Dict[str, layouts.Item],
                users: Dict[str, layouts.User]):
  """Attaches item and user features; unknown ids are rejected, not dropped."""
  item, user = items.get(inter.item_id), users.get(inter.user_id)
  if item is None or user is None:
    missing = (f"item_id {inter.item_id!r}" if item is None
               else f"user_id {inter.user_id!r}")
    yield beam.pvalue.TaggedOutput(
        REJECTS_TAG, _reject("interactions", "join",
                             f"{missing} not in its table", "\t".join(
                                 map(str, inter))))
    return
  yield (inter, item, user)


def with_history(user_rows: Tuple[str, Iterable[Tuple]], max_history: int,
                 cut: Optional[int] = None):
  """Emits each of a user's interactions with the items rated strictly before.

  Ratings that share a timestamp do not see each other: neither happened
  "before" the other, and letting one see the other would leak the future into
  training. The history keeps the most recent `max_history` items, oldest first.
  Interactions after `cut` (the eval split's) also carry every earlier item
  (features.RATED_BEFORE), which the Evaluator leaves out of the top k.
  """
  _, rows = user_rows
  ordered = sorted(rows, key=lambda r: (r[0].timestamp, r[0].item_id))
  earlier: List[str] = []
  i = 0
  while i < len(ordered):
    j = i
    ts = ordered[i][0].timestamp
    while j < len(ordered) and ordered[j][0].timestamp == ts:
      j += 1
    history = tuple(earlier[-max_history:]) if max_history else ()
    for inter, item, user in ordered[i:j]:
      record = interaction_record(inter, item, user, history)
      if cut is not None and ts > cut:
        record[features.RATED_BEFORE] = list(earlier)
      yield record
    earlier.extend(r[0].item_id for r in ordered[i:j])
    i = j


def mark_cold(record: Dict, train_items: Dict[str, bool],
              train_users: Dict[str, bool]) -> Dict:
  """An eval record with features.COLD_ITEM (nobody rated its item in the
  training split: only the text can place it) and features.COLD_USER (its
  user rated nothing there: no id row, only their profile and their
  eval-period history), the Evaluator's cold-start slices."""
  return {**record,
          features.COLD_ITEM: [int(record[features.ITEM_ID] not in
                                   train_items)],
          features.COLD_USER: [int(record[features.USER_ID] not in
                                   train_users)]}


def interaction_record(inter: layouts.Interaction, item: layouts.Item,
                       user: layouts.User, history: Tuple[str, ...]) -> Dict:
  return {
      features.USER_ID: inter.user_id, features.ITEM_ID: inter.item_id,
      features.RATING: inter.rating, features.TIMESTAMP: inter.timestamp,
      features.AGE: user.age, features.GENDER: user.gender,
      features.OCCUPATION: user.occupation, features.TITLE: item.title,
      features.YEAR: item.year, features.GENRES: list(item.genres),
      features.HISTORY: list(history),
  }


def item_record(item: layouts.Item) -> Dict:
  return {features.ITEM_ID: item.item_id, features.TITLE: item.title,
          features.YEAR: item.year, features.GENRES: list(item.genres)}


def to_example(record: Dict) -> bytes:
  """Serialises a record as tf.Example using the types in features.py."""
  spec = features.raw_feature_spec()
  feats = {}
  for key, value in record.items():
    values = value if isinstance(value, list) else [value]
    dtype = spec[key].dtype
    if dtype == tf.string:
      feats[key] = tf.train.Feature(bytes_list=tf.train.BytesList(
          value=[v.encode("utf-8") for v in values]))
    elif dtype == tf.int64:
      feats[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    else:
      feats[key] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
  # deterministic: map entries (the features) in key order, so equal
  # records are equal bytes in any process (WriteInCanonicalOrder sorts them).
  return tf.train.Example(features=tf.train.Features(
      feature=feats)).SerializeToString(deterministic=True)


def time_partition(record: Dict, n: int, cut: int,
                   eval_until: Optional[int]) -> int:
  """0: train (up to the cutoff), 1: eval (after it, up to eval_until when
  set), 2: later than eval_until (not yet happened in a replayed period)."""
  del n  # Beam's partition count
  timestamp = record[features.TIMESTAMP]
  if timestamp <= cut:
    return 0
  return 1 if not eval_until or timestamp <= eval_until else 2


def time_cutoff(min_max: Tuple[int, int], eval_fraction: float,
                train_until: Optional[int]) -> int:
  """Last timestamp that belongs to training.

  Given no explicit cutoff, the last `eval_fraction` of the covered time span
  is held out: recommenders are judged on the future, not on a random sample.
  """
  if train_until:
    return int(train_until)
  lo, hi = min_max
  return int(lo + (1.0 - eval_fraction) * (hi - lo))


class MinMax(beam.CombineFn):

  def create_accumulator(self):
    return (None, None)

  def add_input(self, acc, value):
    lo, hi = acc
    return (value if lo is None else min(lo, value),
            value if hi is None else max(hi, value))

  def merge_accumulators(self, accs):
    out = (None, None)
    for lo, hi in accs:
      if lo is not None:
        out = self.add_input(self.add_input(out, lo), hi)
    return out

  def extract_output(self, acc):
    return acc


class WriteInCanonicalOrder(beam.PTransform):
  """Serialized records -> `<prefix>-SSSSS-of-NNNNN.gz` TFRecord files whose
  number, contents and order depend on the records alone.

  Beam's WriteToTFRecord writes records in whatever order the workers got to
  them, so two runs over the same data wrote other files, and the Trainer's
  seeded shuffle of another order trains another model. Here the shard of a
  record is a hash of its bytes, the shard count follows from the record
  count, and each shard is sorted before it is written: the same data gives
  byte-identical files on one worker or many, and a seeded pipeline repeats.
  """

  def __init__(self, prefix: str,
               records_per_shard: int = RECORDS_PER_SHARD):
    super().__init__()
    self._prefix, self._per_shard = prefix, records_per_shard

  def expand(self, records):
    per_shard = self._per_shard
    # Temporary files live beside the output folder, never in it: a worker
    # that dies mid-write leaves nothing a `Split-*/*` glob would read.
    staging = f"{os.path.dirname(self._prefix)}.staging"
    shards = beam.pvalue.AsSingleton(
        records
        | "Count" >> beam.combiners.Count.Globally()
        | "Shards" >> beam.Map(lambda n: max(1, -(-n // per_shard))))
    keyed = records | "ShardOf" >> beam.Map(
        lambda r, n: (zlib.crc32(r) % n, r), n=shards)
    # One empty marker per shard, so a shard with no records is still a file
    # (and an empty split still has one).
    markers = (records.pipeline
               | "One" >> beam.Create([None])
               | "EveryShard" >> beam.FlatMap(
                   lambda _, n: [(i, None) for i in range(n)], n=shards))
    written = ((keyed, markers)
               | "WithMarkers" >> beam.Flatten()
               | "GroupByShard" >> beam.GroupByKey()
               | "WriteShard" >> beam.Map(_write_shard, prefix=self._prefix,
                                          staging=staging, shards=shards))
    # Once every shard is in place: what dead or retried workers left.
    return (records.pipeline
            | "AfterWrites" >> beam.Create([None])
            | "RemoveStaging" >> beam.Map(
                _remove_staging, staging=staging,
                written=beam.pvalue.AsList(written)))


def _write_shard(shard_records: Tuple[int, Iterable[Optional[bytes]]],
                 prefix: str, staging: str, shards: int) -> str:
  """Writes one shard's records, sorted, to a temporary file of its own in
  `staging`, then renames it into place (a retried worker rewrites the same
  bytes)."""
  shard, records = shard_records
  path = f"{prefix}-{shard:05d}-of-{shards:05d}.gz"
  temporary = os.path.join(
      staging, f"{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
  tf.io.gfile.makedirs(os.path.dirname(path))
  tf.io.gfile.makedirs(staging)
  with tf.io.TFRecordWriter(temporary, "GZIP") as writer:
    for record in sorted(r for r in records if r is not None):
      writer.write(record)
  tf.io.gfile.rename(temporary, path, overwrite=True)
  return path


def _remove_staging(_, staging: str, written: List[str]) -> List[str]:
  if tf.io.gfile.exists(staging):
    tf.io.gfile.rmtree(staging)
  return written
