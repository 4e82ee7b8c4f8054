"""Replay's periods and the catalogue reader, on small fixtures (the
pipeline test runs the real thing on MovieLens; bench/continuous.py replays
it whole)."""
import dataclasses

import numpy as np
import pytest
from movielens_fixtures import write_recbole

from components.movielens_example_gen import layouts
from pipeline import catalog_refresh
from pipeline import configs
from pipeline import replay

ITEMS = [(1, "Heat", 1995, "Action Crime"), (2, "Casablanca", 1942, "Drama"),
         (3, "Toy Story", 1995, "Animation")]
USERS = [(1, 24, "M", "technician", "0"), (2, 30, "F", "writer", "0"),
         (3, 40, "M", "doctor", "0")]


@pytest.fixture
def log_dir(tmp_path):
  # Time 0..100: the initial window is 0..50; periods of 12.5. Nothing
  # happens in (62.5, 75]: period 2 is empty. User 3 and item 3 arrive in
  # period 3.
  interactions = [(1, 1, 4, 0), (2, 2, 3, 20), (1, 2, 5, 50),
                  (2, 1, 4, 55), (1, 3, 2, 60),
                  (3, 3, 5, 80), (3, 1, 4, 85),
                  (2, 3, 1, 100),
                  b"not\ta\trow\n"]
  return write_recbole(str(tmp_path / "log"), interactions, ITEMS, USERS)


def test_periods_count_interactions_and_newcomers(log_dir):
  log = replay.Log.read(log_dir, layouts.TimestampWindow(0))
  assert len(log.timestamps) == 8  # the malformed row is not counted
  periods = replay.periods(log, 4)
  assert [(p.train_until, p.eval_until) for p in periods] == [
      (50, 62), (62, 75), (75, 87), (87, 100)]
  assert [p.interactions for p in periods] == [2, 0, 2, 1]
  assert [p.new_users for p in periods] == [0, 0, 1, 0]
  assert [p.new_items for p in periods] == [1, 0, 0, 0]
  with pytest.raises(ValueError, match="periods >= 1"):
    replay.periods(log, 0)


def test_a_period_without_interactions_is_reported_and_skipped(
    log_dir, monkeypatch, tmp_path):
  ran = []

  def run_period(config, log, period):  # stands in for a pipeline run
    ran.append((period.period, config.train_until, config.train_steps))
    return dict(steps=config.train_steps, train_seconds=1.0,
                warm_started=False, blessed=True, pushed_version=None,
                **{"recall@10": 0.1, "recall@100": 0.5,
                   "interaction_recall@10": 0.2,
                   "interaction_recall@100": 0.6})

  monkeypatch.setattr(replay, "run_period",
                      lambda c, l, p: run_period(
                          dataclasses.replace(c, train_until=p.train_until),
                          l, p))
  config = configs.PipelineConfig(data_dir=log_dir,
                                  output_dir=str(tmp_path / "out"),
                                  train_steps=40, min_timestamp=0)
  rows = replay.replay(config, 4, warm_steps=10)
  assert [r["period"] for r in rows if r.get("skipped")] == [2]
  # Nothing was pushed, so no run had a model to warm-start from.
  assert ran == [(1, 50, 40), (3, 75, 40), (4, 87, 40)]
  table = replay.format_rows(rows)
  assert "no interactions: skipped" in table
  assert "0.2000 0.6000" in table  # recall per interaction


def test_catalogue_rows_without_title_or_genres_are_rejected(tmp_path):
  items = ITEMS + [(4, " ", 1999, "Drama"), (5, "No Genre", 1999, "")]
  folder = write_recbole(str(tmp_path / "d"), [(1, 1, 4, 0)], items, USERS)
  parsed, rejected = catalog_refresh.read_items(folder)
  assert [i.item_id for i in parsed] == ["1", "2", "3"]
  assert [reason for reason, _ in rejected] == ["no title", "no genre"]


def test_continuous_table_reports_new_and_returning_users_apart():
  """bench-continuous averages each user group over repeats and compares
  warm with scratch per group; a group a period lacks is left out."""
  from bench import continuous

  def row(period, new, returning, scale=1.0):
    return {"period": period, "interactions": 10, "new_users": 1,
            "new_items": 0, "steps": 40, "train_seconds": 1.0,
            "blessed": True, "pushed_version": 7,
            "recall@10": 0.1 * scale, "recall@100": 0.5 * scale,
            "interaction_recall@10": 0.2, "interaction_recall@100": 0.6,
            "recall@10_new_users": None if new is None else new / 2,
            "recall@100_new_users": new,
            "recall@10_returning_users": returning / 2,
            "recall@100_returning_users": returning}

  warm = [[row(1, 0.4, 0.6), row(2, None, 0.3)],
          [row(1, 0.6, 0.6), row(2, None, 0.5)]]
  scratch = [[row(1, 0.5, 0.5), row(2, None, 0.5)]] * 2
  periods = continuous.combine(warm, scratch)
  assert periods[0]["warm"]["recall@100_new_users"] == 0.5
  assert periods[0]["warm_vs_scratch_recall@100_returning_users"] == 0.2
  assert periods[1]["warm"]["recall@100_new_users"] is None
  assert periods[1]["warm_vs_scratch_recall@100_new_users"] is None
  assert periods[1]["warm_vs_scratch_recall@100_returning_users"] == -0.2
  lines = continuous.group_lines(periods)
  assert lines == [
      "period 1 per-user recall@100, warm vs scratch: new users 0.5000 vs "
      "0.5000 (+0.0%), returning users 0.6000 vs 0.5000 (+20.0%)",
      "period 2 per-user recall@100, warm vs scratch: returning users "
      "0.4000 vs 0.5000 (-20.0%)"]
  assert "0.4000/0.6000" in replay.format_rows(warm[0][:1])


def _units(per_user, new, per_interaction, users=("a", "b", "c", "d")):
  """A run's replay.UNITS: per-user recall@100 of `users` (`new` marks the
  new ones) and per-interaction hits, two interactions per user."""
  return {replay.USERS: np.array(users, object),
          replay.NEW_USERS: np.array(new, bool),
          "recall@100": np.array(per_user, float),
          replay.PER_INTERACTION + replay.USERS: np.repeat(
              np.array(users, object), 2),
          replay.PER_INTERACTION + "recall@100": np.array(per_interaction,
                                                          float)}


def test_warm_vs_scratch_intervals_resample_users_and_repeats():
  """bench-continuous's intervals: a warm chain ahead for every user is
  ahead over the whole interval; identical chains have a zero-width one at
  0; a group the period lacks is None; runs of other users are refused."""
  from bench import continuous
  new = [True, True, False, False]
  hits = [1, 0, 1, 1, 0, 0, 1, 0]
  scratch = [{replay.UNITS: _units([0.2, 0.4, 0.2, 0.4], new, hits)},
             {replay.UNITS: _units([0.25, 0.35, 0.15, 0.45], new, hits)}]
  ahead = [{replay.UNITS: _units([0.3, 0.5, 0.4, 0.5], new,
                                 [1, 1, 1, 1, 0, 1, 1, 0])}] * 2
  found = continuous.intervals(ahead, scratch)
  assert found["recall@100"]["gap"] == pytest.approx(0.125 / 0.3, abs=1e-4)
  assert found["recall@100"]["low"] > 0 and found["recall@100"]["users"] == 4
  # New users: 0.4 vs 0.3; returning users: 0.45 vs 0.3.
  assert found["recall@100_new_users"]["gap"] == pytest.approx(1 / 3,
                                                               abs=1e-4)
  assert found["recall@100_returning_users"]["users"] == 2
  assert found["interaction_recall@100"]["gap"] == pytest.approx(2 / 4)
  level = continuous.intervals(scratch, scratch)["recall@100"]
  assert level["gap"] == level["low"] == level["high"] == 0
  everyone_new = [{replay.UNITS: _units([0.2] * 4, [True] * 4, hits)}]
  assert continuous.intervals(everyone_new, everyone_new)[
      "recall@100_returning_users"] is None
  # Rows recorded without per-unit values have no intervals.
  assert continuous.intervals([{}], [{}]) is None
  others = [{replay.UNITS: _units([0.2] * 4, new, hits, "wxyz")}]
  with pytest.raises(ValueError, match="different users"):
    continuous.intervals(others, scratch[:1])
  lines = continuous.interval_lines([{"period": 2, "intervals": found}])
  assert lines[0].startswith("period 2 warm vs scratch recall@100, 95% "
                             "interval over users and repeats: per user "
                             "+41.7% (")


def test_bench_continuous_attaches_and_plots_each_periods_intervals(tmp_path):
  from bench import continuous
  new, hits = [True, True, False, False], [1, 0, 1, 1, 0, 0, 1, 0]

  def row(period, per_user):
    return {"period": period, "interactions": 8, "new_users": 2,
            "new_items": 0, "steps": 40, "train_seconds": 1.0,
            "blessed": True, "pushed_version": 7, "recall@10": 0.1,
            "recall@100": float(np.mean(per_user)),
            "interaction_recall@10": 0.2, "interaction_recall@100": 0.5,
            replay.UNITS: _units(per_user, new, hits)}

  warm = [[row(1, [0.2] * 4), row(2, [0.4] * 4)]]
  scratch = [[row(1, [0.2] * 4), row(2, [0.2] * 4)]]
  periods = continuous.combine(warm, scratch)
  assert periods[0]["intervals"]["recall@100"]["gap"] == 0
  assert periods[1]["intervals"]["recall@100"] == {
      "gap": 1.0, "low": 1.0, "high": 1.0, "users": 4}
  path = tmp_path / "continuous.png"
  continuous.plot(periods, str(path))
  assert path.stat().st_size > 0
