"""`recsys replay`: the pipeline run every period over MovieLens' timeline.

The live system retrains as interactions arrive. Replay reproduces that on
the log: the first `initial_fraction` of the time span is the initial
window, the rest is cut into `periods` equal periods, and period k is one
pipeline run (its own process) in the same ML Metadata store that trains on
everything up to the end of period k-1 and is evaluated on period k only
(ExampleGen's train_until / eval_until). Each run warm-starts from the
latest blessed model (the Resolver in pipeline.py) unless warm start is
off, and the Evaluator blesses it only if it is no worse than that model on
period k.

For each period it reports the data (interactions, new users, new items),
the training (steps, seconds, warm or not), retrieval quality with seen items
excluded (`recommend_unseen`, recall@10/@100 of the period's items per
user, and per interaction) and whether the model was blessed and which
version was pushed.
"""
import dataclasses
import json
import multiprocessing
import os
from concurrent import futures
from typing import Callable, Dict, List, Optional

import numpy as np
import tensorflow as tf
from absl import logging

from components.movielens_example_gen import layouts
from pipeline import configs
from pipeline import lineage
from pipeline import local_runner
from trainer import contract
from trainer import item_embeddings
from trainer.config import RUN_METRICS_FILE


@dataclasses.dataclass
class Period:
  """Period k: train on (.., train_until], evaluate on (train_until,
  eval_until]."""
  period: int
  train_until: int
  eval_until: int
  interactions: int
  new_users: int
  new_items: int


@dataclasses.dataclass
class Log:
  """The interaction log and user table, read once with ExampleGen's own
  parsers (malformed rows are skipped here; ExampleGen reports them)."""
  users: np.ndarray
  items: np.ndarray
  timestamps: np.ndarray
  profiles: Dict[str, layouts.User]

  @classmethod
  def read(cls, data_dir: str,
           window: layouts.TimestampWindow = layouts.TimestampWindow()
           ) -> "Log":
    layout = layouts.detect_layout(data_dir).with_window(window)
    rows = _parse(data_dir, layout.interactions)
    profiles = {u.user_id: u for u in _parse(data_dir, layout.users)}
    return cls(np.array([r.user_id for r in rows]),
               np.array([r.item_id for r in rows]),
               np.array([r.timestamp for r in rows], np.int64), profiles)


def _parse(data_dir: str, table: layouts.Table) -> list:
  return layouts.read_rows(data_dir, table, tf.io.gfile.GFile)[0]


def periods(log: Log, count: int, initial_fraction: float = 0.5
            ) -> List[Period]:
  """The initial window and `count` equal periods after it.

  Raises:
    ValueError: for fewer than one period or a fraction outside (0, 1).
  """
  if count < 1 or not 0 < initial_fraction < 1:
    raise ValueError(f"need periods >= 1 and 0 < initial_fraction < 1, got "
                     f"{count} and {initial_fraction}")
  first, last = int(log.timestamps.min()), int(log.timestamps.max())
  start = first + initial_fraction * (last - first)
  ends = [int(start + k * (last - start) / count) for k in range(count + 1)]
  ends[-1] = last
  out = []
  for k in range(1, count + 1):
    before = log.timestamps <= ends[k - 1]
    during = ~before & (log.timestamps <= ends[k])
    out.append(Period(
        period=k, train_until=ends[k - 1], eval_until=ends[k],
        interactions=int(during.sum()),
        new_users=len(set(log.users[during]) - set(log.users[before])),
        new_items=len(set(log.items[during]) - set(log.items[before]))))
  return out


# Prefix of the per-interaction columns (see `recall_per_interaction`).
PER_INTERACTION = "interaction_"
# Suffixes of the per-user columns over new and returning users apart.
NEW_USERS = "_new_users"
RETURNING_USERS = "_returning_users"
# Key of a row's per-unit values, each recall column's mean taken apart:
# {column: [n] one value per user (per-user columns) or per interaction
# (PER_INTERACTION columns), plus USERS / PER_INTERACTION + USERS, whose
# user each value belongs to}. What a bootstrap over users resamples;
# not a table column (bench-continuous keeps it out of its JSON).
UNITS = "units"
USERS = "users"


def recall_unseen(recommend_unseen, log: Log, period: Period,
                  ks=(10, 100), batch: int = 256) -> Dict[str, float]:
  """recall@k of each eval user's period-k items in `recommend_unseen`
  (everything the user rated up to train_until excluded), averaged over the
  period's users: one top-k per user, as a nightly batch job would send.

  Also averaged over the period's new users (nothing rated before it: the
  list comes from the profile and the unknown-user row) and over returning
  ones (their history and id row) apart, under the NEW_USERS and
  RETURNING_USERS suffixes: the two are different models of the user and
  move apart (a warm start that is level overall can be ahead on one and
  behind on the other). Each user's own recall is under UNITS.
  """
  order = np.argsort(log.timestamps, kind="stable")
  seen: Dict[str, List[str]] = {}
  targets: Dict[str, set] = {}
  for i in order:
    t, user, item = log.timestamps[i], log.users[i], log.items[i]
    if t <= period.train_until:
      seen.setdefault(user, []).append(item)
    elif t <= period.eval_until:
      targets.setdefault(user, set()).add(item)
  users = sorted(targets)
  groups = {"": np.ones(len(users), bool),
            NEW_USERS: np.array([u not in seen for u in users], bool)}
  groups[RETURNING_USERS] = ~groups[NEW_USERS]
  if not users:
    return {f"recall@{k}{group}": None for k in ks for group in groups}
  ranked = _top_unseen(recommend_unseen, log,
                       [(u, seen.get(u, [])) for u in users], max(ks), batch)
  out, units = {}, {USERS: np.array(users, object),
                    NEW_USERS: groups[NEW_USERS]}
  for k in ks:
    recalls = np.array([len(set(row[:k]) & targets[u]) / len(targets[u])
                        for u, row in zip(users, ranked)])
    units[f"recall@{k}"] = recalls
    for group, members in groups.items():
      out[f"recall@{k}{group}"] = (float(recalls[members].mean())
                                   if members.any() else None)
  out[UNITS] = units
  return out


def recall_per_interaction(recommend_unseen, log: Log, period: Period,
                           ks=(10, 100), batch: int = 512
                           ) -> Dict[str, float]:
  """recall@k over the period's interactions: each asks `recommend_unseen`
  for its item with the user's history just before it (period-k
  interactions included, as a live request would carry them), a hit if the
  item is in the top k. The protocol of bench-quality and the Evaluator;
  it averages over every interaction rather than a few hundred users, so
  it moves far less with training noise than `recall_unseen`. Each
  interaction's hit (1 or 0) is under UNITS."""
  order = np.argsort(log.timestamps, kind="stable")
  history: Dict[str, List[str]] = {}
  queries, targets = [], []
  for i in order:
    t, user, item = log.timestamps[i], log.users[i], log.items[i]
    if t > period.eval_until:
      break
    if t > period.train_until:
      queries.append((user, list(history.get(user, []))))
      targets.append(item)
    history.setdefault(user, []).append(item)
  if not queries:
    return {f"{PER_INTERACTION}recall@{k}": None for k in ks}
  ranked = _top_unseen(recommend_unseen, log, queries, max(ks), batch)
  out = {}
  units = {PER_INTERACTION + USERS: np.array([u for u, _ in queries], object)}
  for k in ks:
    hits = np.array([item in row[:k] for item, row in zip(targets, ranked)],
                    np.float64)
    units[f"{PER_INTERACTION}recall@{k}"] = hits
    out[f"{PER_INTERACTION}recall@{k}"] = float(hits.mean())
  out[UNITS] = units
  return out


def _top_unseen(signature, log: Log, queries, k: int,
                batch: int) -> List[List[str]]:
  """(user, history) pairs -> each one's top k item ids from the exported
  `recommend_unseen` signature (history excluded), profiles from the log."""
  ranked = []
  for start in range(0, len(queries), batch):
    requests = []
    for user, seen in queries[start:start + batch]:
      profile = log.profiles.get(user)
      requests.append({
          "user_id": user, "history": seen,
          "age": profile.age if profile else 0,
          "gender": profile.gender if profile else "",
          "occupation": profile.occupation if profile else ""})
    inputs = contract.complete_inputs(
        contract.RECOMMEND_UNSEEN, signature.structured_input_signature[1],
        dict(contract.user_inputs(requests), **{contract.K: np.int32(k)}))
    out = signature(**{name: tf.constant(v) for name, v in inputs.items()})
    ranked += [[i.decode() for i in row]
               for row in out[contract.ITEM_IDS].numpy()]
  return ranked


def run_row(run: lineage.Run, log: Log, period: Period) -> Dict:
  """What the table reports for one pipeline run of `period`, read from
  what the run recorded in ML Metadata (its own Trainer, Evaluator and
  Pusher outputs, never a later run's)."""
  model_run = run.output("RecommenderTrainer", "model_run")
  if model_run is None:
    raise LookupError(f"run {run.name} has no trained model (stopped at a "
                      f"gate?): see its report")
  with tf.io.gfile.GFile(os.path.join(model_run, RUN_METRICS_FILE)) as f:
    trained = json.loads(f.read())
  model_dir = os.path.join(run.output("RecommenderTrainer", "model"),
                           "Format-Serving")
  # Loaded once for both measures; recall needs no reasons.
  signatures = tf.saved_model.load(model_dir).signatures
  recommend_unseen = signatures[contract.recommend_signature(
      exclude_seen=True, explain=False, served=signatures)]
  blessing = _properties(run, "Evaluator", "blessing")
  push = _properties(run, "AtomicPusher", "pushed_model")
  embeddings = run.output("ItemTextEmbedder", "item_embeddings")
  embedded = item_embeddings.read_metadata(embeddings) if embeddings else {}
  per_user = recall_unseen(recommend_unseen, log, period)
  per_interaction = recall_per_interaction(recommend_unseen, log, period)
  units = {**per_user.pop(UNITS, {}), **per_interaction.pop(UNITS, {})}
  return dict(steps=trained["steps"],
              train_seconds=round(trained["train_seconds"], 1),
              warm_started=trained.get("warm_start") is not None,
              **per_user, **per_interaction,
              blessed=bool(blessing.get("blessed")),
              pushed_version=(int(push["pushed_version"])
                              if push.get("pushed") else None),
              # Texts BERT ran on (the rest reused from the previous
              # period's artifact) and the embedder's seconds; None
              # without the text tower or before they were recorded.
              encoded_texts=embedded.get("encoded_texts"),
              embed_seconds=embedded.get("seconds"), **{UNITS: units})


def _properties(run: lineage.Run, component: str, key: str) -> Dict:
  step = run.steps.get(component)
  return step.output_properties.get(key, {}) if step else {}


def run_period(config: configs.PipelineConfig, log: Log, period: Period,
               own_process: bool = True) -> Dict:
  """One pipeline run for `period`; returns what the table reports."""
  config = dataclasses.replace(config, train_until=period.train_until,
                               eval_until=period.eval_until)
  if own_process:
    run_in_own_process(config)
  else:
    local_runner.run(config)
  return run_row(lineage.latest_run(config.metadata_path), log, period)


def run_in_own_process(config: configs.PipelineConfig) -> None:
  """One pipeline run in a fresh Python process, as cron or a Kubeflow
  recurring run starts each period. A long-lived process drifts: in one
  replay the same seeded, deterministic training run late in the process
  was a float ulp off a fresh process's by step 12 and 9% apart in recall
  at the end. Our gates' stops come back as themselves."""
  context = multiprocessing.get_context("spawn")
  with futures.ProcessPoolExecutor(1, mp_context=context) as pool:
    pool.submit(_run_reporting_stops, config).result()


def _run_reporting_stops(config: configs.PipelineConfig) -> None:
  from pipeline import progress
  from pipeline import stops
  if "://" not in config.output_dir:
    progress.configure(config.output_dir)
  try:
    local_runner.run(config)
  except Exception as e:
    stop = stops.find_stop(e)
    if stop is None:
      raise
    # The full traceback to run.log (the console filter drops stops); the
    # stop alone to the caller (the orchestrator's wrapper may not pickle).
    logging.error("pipeline run stopped", exc_info=True)
    raise stop from None


def read_log(config: configs.PipelineConfig) -> Log:
  """The log within the config's timestamp window."""
  return Log.read(config.data_dir, layouts.TimestampWindow(
      config.min_timestamp, config.max_timestamp))


def _each_period(log: Log, count: int, initial_fraction: float,
                 row_for: Callable[[Period], Optional[Dict]]) -> List[Dict]:
  """The table's rows, one per period in order: a period without
  interactions is reported and skipped, any other gets `row_for(period)`'s
  columns; `row_for` returning None ends the table there."""
  rows = []
  for period in periods(log, count, initial_fraction):
    row = dataclasses.asdict(period)
    if not period.interactions:
      logging.warning("replay: period %d has no new interactions; skipped",
                      period.period)
      rows.append(dict(row, skipped=True))
      continue
    columns = row_for(period)
    if columns is None:
      break
    rows.append(dict(row, **columns))
  return rows


def replay(config: configs.PipelineConfig, count: int,
           warm_steps: Optional[int] = None,
           initial_fraction: float = 0.5) -> List[Dict]:
  """Runs every period in order; a period without interactions is reported
  and skipped. The first run has no blessed model to start from and trains
  `config.train_steps`; later runs train `warm_steps` when warm-starting.
  """
  log = read_log(config)

  def train(period: Period) -> Dict:
    steps = config.train_steps
    if (config.trainer.warm_start and warm_steps and
        contract.versions(config.serving_model_dir)):
      steps = warm_steps
    logging.info("replay: period %d/%d: train until %d, eval until %d, %d "
                 "interactions, %d steps", period.period, count,
                 period.train_until, period.eval_until, period.interactions,
                 steps)
    return run_period(dataclasses.replace(config, train_steps=steps), log,
                      period)

  return _each_period(log, count, initial_fraction, train)


def rows_from_store(config: configs.PipelineConfig, count: int,
                    initial_fraction: float = 0.5) -> List[Dict]:
  """The rows `replay` returned, rebuilt from a finished (or interrupted)
  replay's metadata store without training anything: its runs, oldest
  first, are the periods that were not skipped, in order. Stops at the
  first period without a run that trained a model. The store must hold
  this replay's runs only.
  """
  log = read_log(config)
  runs = (iter(lineage.all_runs(config.metadata_path))
          if os.path.exists(config.metadata_path) else iter(()))

  def recorded(period: Period) -> Optional[Dict]:
    run = next(runs, None)
    if run is None:
      return None
    try:
      return run_row(run, log, period)
    except LookupError as e:  # interrupted, or stopped at a gate
      logging.info("period %d: %s", period.period, e)
      return None

  return _each_period(log, count, initial_fraction, recorded)


def format_rows(rows: List[Dict]) -> str:
  """The replay's table; recall per user (all, then new / returning users'
  recall@100), then per interaction."""
  head = (f"{'period':>6} {'interact.':>9} {'new users':>9} {'new items':>9}"
          f" {'steps':>6} {'train s':>8} {'recall@10':>9} {'recall@100':>10}"
          f" {'r@100 new/ret.':>15} {'per interaction':>17} {'blessed':>7}"
          f" {'pushed':>11}")
  lines = [head, "-" * len(head)]
  for r in rows:
    if r.get("skipped"):
      lines.append(f"{r['period']:>6} {0:>9} (no interactions: skipped)")
      continue
    groups = "/".join(_four_places(r.get("recall@100" + group))
                      for group in (NEW_USERS, RETURNING_USERS))
    per_interaction = (f"{r[PER_INTERACTION + 'recall@10']:.4f} "
                       f"{r[PER_INTERACTION + 'recall@100']:.4f}")
    lines.append(
        f"{r['period']:>6} {r['interactions']:>9} {r['new_users']:>9} "
        f"{r['new_items']:>9} {r['steps']:>6} {r['train_seconds']:>8} "
        f"{r['recall@10']:>9.4f} {r['recall@100']:>10.4f} {groups:>15} "
        f"{per_interaction:>17} "
        f"{str(r['blessed']):>7} {str(r['pushed_version']):>11}")
  return "\n".join(lines)


def _four_places(value: Optional[float]) -> str:
  return "-" if value is None else f"{value:.4f}"
