"""Executor: raw MovieLens tables -> time-split tf.Examples plus a rejects file.

Writes the standard ExampleGen layout (`Split-<name>/data_tfrecord-*.gz`) so
StatisticsGen, Transform, Trainer and Evaluator read it like any ExampleGen
output, in files whose contents and order depend on the data alone
(transforms.WriteInCanonicalOrder), so a seeded Trainer repeats across
pipeline runs and runners. Rows that cannot be used are written with their
reason to `<examples uri>/rejects/rejects-*.tsv` and counted; above
`max_reject_fraction` of any table the run stops with a report.
"""
import json
import os
import time
from typing import Any, Dict, List

import apache_beam as beam
from absl import logging
from tfx import types
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components.movielens_example_gen import layouts
from components.movielens_example_gen import transforms
from trainer import features

DATA_DIR = "data_dir"
TRAIN_UNTIL = "train_until"
EVAL_UNTIL = "eval_until"
EVAL_FRACTION = "eval_fraction"
MAX_REJECT_FRACTION = "max_reject_fraction"
MAX_HISTORY = "max_history"
# Plausible interaction times (layouts.TimestampWindow); None: the default.
MIN_TIMESTAMP = "min_timestamp"
MAX_TIMESTAMP = "max_timestamp"
MIN_TRAIN_USERS = "min_train_users"
INPUT_FINGERPRINT = "input_fingerprint"
# What this executor writes, as a version the component passes on as an
# execution property. TFX's cache keys on inputs and properties, not on
# code: without it, a run after an upgrade reused examples an older writer
# had laid out (seen: worker-order files, not WriteInCanonicalOrder's, so
# a seeded Trainer trained another model than on a fresh clone). Bump it
# whenever the examples' content or layout changes.
EXAMPLES_FORMAT = "examples_format"
EXAMPLES_FORMAT_VERSION = "5: eval examples carry cold_item and cold_user"
EXAMPLES = "examples"

REJECTS_DIR = "rejects"
COUNTS_FILE = "ingest_counts.json"


class TooManyRejects(RuntimeError):
  """More malformed rows than the run allows; the message is the report."""


class ImplausibleSplit(RuntimeError):
  """The time split left too little (or too much) to train or evaluate on;
  the message is the report."""


# The split gate: eval must hold this share of the written interactions
# (unless an explicit --eval-until window was asked for), and training at
# least MIN_TRAIN_USERS users (exec property min_train_users overrides).
EVAL_SHARE_RANGE = (0.01, 0.5)
MIN_TRAIN_USERS_DEFAULT = 10


def split_report(counts: Dict[str, Dict[str, int]], min_train_users: int,
                 explicit_eval_window: bool) -> List[str]:
  """Lines saying what is implausible about the split; [] if nothing."""
  train = counts.get(f"split:{features.TRAIN_SPLIT}", {}).get("written", 0)
  evaluation = counts.get(f"split:{features.EVAL_SPLIT}", {}).get(
      "written", 0)
  split = counts.get("split", {})
  users = split.get("train_users", 0)
  total = max(train + evaluation, 1)
  low, high = EVAL_SHARE_RANGE
  share = evaluation / total
  problems = []
  if share > high or (share < low and not explicit_eval_window):
    problems.append(
        f"eval holds {share:.1%} of {total:,} interactions (expected "
        f"{low:.0%}-{high:.0%}): the cutoff train_until="
        f"{split.get('train_until')} ({_date(split.get('train_until'))}) "
        "is implausible for this data")
  if users < min_train_users:
    problems.append(f"training has {users} users (at least "
                    f"{min_train_users} needed)")
  if problems:
    problems.append(
        f"interactions span {_date(split.get('first'))} to "
        f"{_date(split.get('last'))}: look for outlier timestamps (the "
        "--min-timestamp/--max-timestamp window), or set --train-until")
  return problems


def _date(seconds) -> str:
  if seconds is None:
    return "?"
  return time.strftime("%Y-%m-%d", time.gmtime(int(seconds)))


def rejects_report(counts: Dict[str, Dict[str, int]], max_fraction: float,
                   samples: List[str]) -> List[str]:
  """Lines naming every table whose rejected fraction exceeds the limit."""
  problems = []
  for table, c in sorted(counts.items()):
    read = max(c.get("read", 0), 1)
    fraction = c.get("rejected", 0) / read
    if fraction > max_fraction:
      problems.append(f"{table}: {c.get('rejected', 0)} of {c.get('read', 0)} "
                      f"rows rejected ({fraction:.1%} > {max_fraction:.1%})")
  if problems and samples:
    problems.append("first rejects (table, source, reason, row):")
    problems.extend("  " + s for s in samples[:10])
  return problems


def _count(pcoll, label: str, table: str, kind: str):
  return (pcoll | f"Count{label}" >> beam.combiners.Count.Globally()
          | f"Tag{label}" >> beam.Map(lambda n: (table, kind, n)))


def _distinct(pcoll, split: str, key: str):
  return (pcoll | f"{split}_{key}" >> beam.Map(lambda r: r[key])
          | f"Distinct_{split}_{key}" >> beam.Distinct())


def _new_in_eval(seen, eval_keys, key: str):
  """Distinct `key` values of the eval split that train never has (new
  users or items: what the run report shows); `seen` is train's, keyed."""
  return eval_keys | f"Unseen_{key}" >> beam.Filter(
      lambda k, seen: k not in seen, seen=beam.pvalue.AsDict(seen))


def read_counts(rejects_dir: str) -> Dict[str, Dict[str, int]]:
  """The ingest counts file, each table's "read" and "rejected" totals
  added (the gate and the run report read the same numbers)."""
  counts = json.loads(io_utils.read_string_file(
      os.path.join(rejects_dir, COUNTS_FILE)))
  for table, c in counts.items():
    if not table.startswith("split"):
      c["read"] = c.get("parsed", 0) + c.get("parse_rejected", 0)
      c["rejected"] = c.get("parse_rejected", 0) + c.get("join_rejected", 0)
  return counts


def read_rejects(rejects_dir: str) -> List[str]:
  """Every rejected row as written: "table, source, reason, row" tab
  separated (headers dropped)."""
  rows = []
  for path in fileio.glob(os.path.join(rejects_dir, "rejects*.tsv")):
    rows.extend(io_utils.read_string_file(path).splitlines()[1:])
  return rows


class Executor(base_beam_executor.BaseBeamExecutor):
  """Builds and runs the ingest pipeline on the configured Beam runner."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    """Reads the tables under `data_dir`, writes train/eval/items splits.

    Args:
      input_dict: none (this is a source component).
      output_dict: `examples`, the Examples artifact to fill.
      exec_properties: the MovieLensExampleGenSpec parameters (data_dir,
        train_until, eval_fraction, max_reject_fraction, max_history, ...).

    Raises:
      TooManyRejects: a table has more malformed rows than allowed.
    """
    self._log_startup(input_dict, output_dict, exec_properties)
    data_dir = exec_properties[DATA_DIR]
    layout = layouts.detect_layout(data_dir, exists=fileio.exists).with_window(
        window(exec_properties))
    examples = artifact_utils.get_single_instance(output_dict[EXAMPLES])
    splits = [features.TRAIN_SPLIT, features.EVAL_SPLIT, features.CATALOG_SPLIT]
    examples.split_names = artifact_utils.encode_split_names(splits)
    rejects_dir = os.path.join(examples.uri, REJECTS_DIR)
    logging.info("MovieLensExampleGen: reading %s layout from %s",
                 layout.name, data_dir)

    with self._make_beam_pipeline() as p:
      parsed, counts = {}, []
      rejects = []
      for name, table in layout.tables().items():
        path = os.path.join(data_dir, table.filename)
        out = p | f"Parse_{name}" >> transforms.ParseTable(name, path, table)
        parsed[name] = out.rows
        rejects.append(out[transforms.REJECTS_TAG])
        counts.append(_count(out.rows, f"Parsed_{name}", name, "parsed"))
        counts.append(_count(out[transforms.REJECTS_TAG], f"Rejected_{name}",
                             name, "parse_rejected"))

      items = parsed["items"] | "KeyItems" >> beam.Map(lambda i: (i.item_id, i))
      users = parsed["users"] | "KeyUsers" >> beam.Map(lambda u: (u.user_id, u))
      joined = parsed["interactions"] | "Join" >> beam.FlatMap(
          transforms.join_tables, items=beam.pvalue.AsDict(items),
          users=beam.pvalue.AsDict(users)).with_outputs(
              transforms.REJECTS_TAG, main="rows")
      rejects.append(joined[transforms.REJECTS_TAG])
      counts.append(_count(joined[transforms.REJECTS_TAG], "RejectedJoin",
                           "interactions", "join_rejected"))

      span = (joined.rows
              | "Timestamps" >> beam.Map(lambda r: r[0].timestamp)
              | "MinMax" >> beam.CombineGlobally(transforms.MinMax()))
      cutoff = (span
                | "Cutoff" >> beam.Map(
                    transforms.time_cutoff,
                    eval_fraction=exec_properties[EVAL_FRACTION],
                    train_until=exec_properties.get(TRAIN_UNTIL)))
      records = (joined.rows
                 | "KeyByUser" >> beam.Map(lambda r: (r[0].user_id, r))
                 | "GroupByUser" >> beam.GroupByKey()
                 | "History" >> beam.FlatMap(
                     transforms.with_history,
                     max_history=exec_properties[MAX_HISTORY],
                     cut=beam.pvalue.AsSingleton(cutoff)))
      train, evaluation, _ = records | "SplitByTime" >> beam.Partition(
          transforms.time_partition, 3, cut=beam.pvalue.AsSingleton(cutoff),
          eval_until=exec_properties.get(EVAL_UNTIL))
      catalog = parsed["items"] | "ItemRecords" >> beam.Map(
          transforms.item_record)

      train_keys = {key: _distinct(train, "Train", key)
                    for key in (features.USER_ID, features.ITEM_ID)}
      # Train's ids keyed for lookups: the cold flags and new-id counts.
      seen = {key: keys | f"Seen_{key}" >> beam.Map(lambda k: (k, True))
              for key, keys in train_keys.items()}
      evaluation = evaluation | "MarkCold" >> beam.Map(
          transforms.mark_cold,
          train_items=beam.pvalue.AsDict(seen[features.ITEM_ID]),
          train_users=beam.pvalue.AsDict(seen[features.USER_ID]))
      counts.append(_count(train_keys[features.USER_ID], "TrainUsers",
                           "split", "train_users"))
      for key in (features.USER_ID, features.ITEM_ID):
        counts.append(_count(
            _new_in_eval(seen[key], _distinct(evaluation, "Eval", key), key),
            f"NewEval_{key}", "split:eval", f"new_{key}s"))
      counts.append(span | "TagSpan" >> beam.FlatMap(
          lambda s: [("split", "first", s[0]), ("split", "last", s[1])]))
      for split, pcoll in zip(splits, (train, evaluation, catalog)):
        counts.append(_count(pcoll, f"Written_{split}", f"split:{split}",
                             "written"))
        _ = (pcoll
             | f"Serialize_{split}" >> beam.Map(transforms.to_example)
             | f"Write_{split}" >> transforms.WriteInCanonicalOrder(
                 os.path.join(artifact_utils.get_split_uri([examples], split),
                              "data_tfrecord")))

      _ = (rejects
           | "FlattenRejects" >> beam.Flatten()
           | "FormatRejects" >> beam.Map(lambda r: "\t".join(map(str, r)))
           | "WriteRejects" >> beam.io.WriteToText(
               os.path.join(rejects_dir, "rejects"), file_name_suffix=".tsv",
               header="table\tsource\treason\trow"))
      _ = ((counts + [cutoff | "TagCutoff" >> beam.Map(
          lambda c: ("split", "train_until", c))])
           | "FlattenCounts" >> beam.Flatten()
           | "AllCounts" >> beam.combiners.ToList()
           | "CountsJson" >> beam.Map(_counts_json)
           | "WriteCounts" >> beam.io.WriteToText(
               os.path.join(rejects_dir, COUNTS_FILE), shard_name_template=""))

    counts = self._check_rejects(examples, rejects_dir,
                                 exec_properties[MAX_REJECT_FRACTION])
    problems = split_report(
        counts, exec_properties.get(MIN_TRAIN_USERS) or
        MIN_TRAIN_USERS_DEFAULT, exec_properties.get(EVAL_UNTIL) is not None)
    if problems:
      raise ImplausibleSplit("Implausible train/eval split:\n" +
                             "\n".join(problems))
    examples_utils.set_payload_format(examples,
                                      example_gen_pb2.FORMAT_TF_EXAMPLE)
    examples_utils.set_file_format(examples, "tfrecords_gzip")

  def _check_rejects(self, examples: types.Artifact, rejects_dir: str,
                     max_fraction: float) -> Dict[str, Dict[str, int]]:
    """Raises TooManyRejects past `max_fraction`; returns the counts."""
    counts = read_counts(rejects_dir)
    tables = {t: c for t, c in counts.items() if not t.startswith("split")}
    rejected = sum(c.get("rejected", 0) for c in tables.values())
    examples.set_int_custom_property("rejected_rows", rejected)
    examples.set_int_custom_property(
        "train_until", counts["split"]["train_until"])
    logging.info("MovieLensExampleGen: %s; rejects in %s",
                 json.dumps(counts, sort_keys=True), rejects_dir)
    problems = rejects_report(tables, max_fraction, read_rejects(rejects_dir))
    if problems:
      raise TooManyRejects("Too many malformed rows; fix the input or raise "
                           "--max-reject-fraction:\n" + "\n".join(problems))
    return counts


def window(exec_properties: Dict[str, Any]) -> layouts.TimestampWindow:
  low = exec_properties.get(MIN_TIMESTAMP)
  return layouts.TimestampWindow(
      layouts.MIN_TIMESTAMP if low is None else low,
      exec_properties.get(MAX_TIMESTAMP))


def _counts_json(rows) -> str:
  """{table: {kind: n}} from the (table, kind, n) counts of the pipeline."""
  out: Dict[str, Dict[str, int]] = {}
  for table, kind, n in rows:
    out.setdefault(table, {})[kind] = n
  return json.dumps(out, sort_keys=True)
