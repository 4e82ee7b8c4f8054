"""Pieces of the run report (pipeline/report.py): escaped tables, inlined
plots, and the data, statistics and tuning sections read from the run's
artifacts."""
import base64
import collections
import html
import io
import os
from typing import Dict, List, Optional, Sequence, Tuple

from components.movielens_example_gen.executor import COUNTS_FILE
from components.movielens_example_gen.executor import REJECTS_DIR
from components.movielens_example_gen.executor import read_counts
from components.movielens_example_gen.executor import read_rejects

_SPLITS = ("train", "eval")


def escape(value) -> str:
  return html.escape("" if value is None else str(value))


def table(header: Sequence[str], rows) -> str:
  """An HTML table; every cell is escaped, numbers right-aligned."""
  head = "".join(f"<th>{escape(h)}</th>" for h in header)
  body = []
  for row in rows:
    cells = "".join(
        f"<td class=n>{escape(c)}</td>" if _numeric(c)
        else f"<td>{escape(c)}</td>" for c in row)
    body.append(f"<tr>{cells}</tr>")
  return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def png(figure, alt: str) -> str:
  """A matplotlib figure as an inline <img> (data URI); closes it."""
  import matplotlib.pyplot as plt
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
  plt.close(figure)
  data = base64.b64encode(buffer.getvalue()).decode("ascii")
  return f"<img alt='{escape(alt)}' src='data:image/png;base64,{data}'>"


def data_section(examples_uri: str) -> str:
  """Rows read and rejected per table (top reasons), split sizes, the time
  cut, and the eval split's new users and items."""
  rejects_dir = os.path.join(examples_uri, REJECTS_DIR)
  if not os.path.exists(os.path.join(rejects_dir, COUNTS_FILE)):
    return "<h2>Data</h2><p class=muted>no ingest counts recorded</p>"
  counts = read_counts(rejects_dir)
  tables = [(name, c["read"], c["rejected"])
            for name, c in sorted(counts.items())
            if not name.startswith("split")]
  split = counts.get("split", {})
  evaluation = counts.get("split:eval", {})
  sizes = [(name, counts.get(f"split:{name}", {}).get("written", 0))
           for name in ("train", "eval", "items")]
  facts = [("train users", split.get("train_users", "")),
           ("eval users not in train", evaluation.get("new_user_ids", "")),
           ("eval items not in train", evaluation.get("new_item_ids", "")),
           ("train until (unix time)", split.get("train_until", ""))]
  reasons = reject_reasons(examples_uri)
  return "\n".join([
      "<h2>Data</h2>",
      table(["table", "rows read", "rejected"], tables),
      "<h3>Most frequent reject reasons</h3>" + (
          table(["table", "reason", "rows"], reasons) if reasons
          else "<p class=ok>No row was rejected.</p>"),
      "<h3>Splits</h3>", table(["split", "examples"], sizes),
      table(["", ""], facts)])


def reject_reasons(examples_uri: str, top: int = 5) -> List[Tuple]:
  """(table, reason, count) of the most frequent rejects."""
  counter = collections.Counter()
  for row in read_rejects(os.path.join(examples_uri, REJECTS_DIR)):
    parts = row.split("\t")
    if len(parts) >= 3:
      counter[(parts[0], parts[2])] += 1
  return [(t, r, n) for (t, r), n in counter.most_common(top)]


def statistics_section(statistics_uri: str, anomalies_uri: str) -> str:
  """Per-feature statistics of train and eval side by side, then each
  split's anomalies against the curated schema (TFDV's table)."""
  import tensorflow_data_validation as tfdv
  out = ["<h2>Statistics and anomalies (TFDV)</h2>"]
  stats = {}
  for split in _SPLITS:
    path = os.path.join(statistics_uri, f"Split-{split}", "FeatureStats.pb")
    if os.path.exists(path):
      stats[split] = tfdv.load_stats_binary(path).datasets[0]
  if stats:
    out.append(table(["feature", "split", "examples", "missing", "mean / "
                      "unique", "std / top values", "min", "max"],
                     _feature_rows(stats)))
  for split in _SPLITS:
    out.append(f"<h3>Anomalies: {split}</h3>" +
               _anomalies_html(anomalies_uri, split))
  return "\n".join(out)


def _feature_rows(stats: Dict) -> List[Tuple]:
  names = sorted({".".join(f.path.step) for d in stats.values()
                  for f in d.features})
  rows = []
  for name in names:
    for split, dataset in stats.items():
      feature = next((f for f in dataset.features
                      if ".".join(f.path.step) == name), None)
      if feature is None:
        continue
      kind = feature.WhichOneof("stats")
      if kind == "num_stats":
        s = feature.num_stats
        c = s.common_stats
        rows.append((name, split, c.num_non_missing, c.num_missing,
                     f"{s.mean:.4g}", f"{s.std_dev:.4g}", f"{s.min:.4g}",
                     f"{s.max:.4g}"))
      elif kind == "string_stats":
        s = feature.string_stats
        c = s.common_stats
        top = ", ".join(f"{v.value} ({v.frequency:.0f})"
                        for v in s.top_values[:3])
        rows.append((name, split, c.num_non_missing, c.num_missing,
                     s.unique, top, "", ""))
  return rows


def _anomalies_html(anomalies_uri: str, split: str) -> str:
  from tensorflow_data_validation.utils import anomalies_util
  from tensorflow_data_validation.utils import display_util
  path = os.path.join(anomalies_uri or "", f"Split-{split}",
                      "SchemaDiff.pb")
  if not anomalies_uri or not os.path.exists(path):
    return "<p class=muted>not validated</p>"
  anomalies = anomalies_util.load_anomalies_binary(path)
  if not anomalies.anomaly_info and not anomalies.HasField(
      "dataset_anomaly_info"):
    return "<p class=ok>No anomalies.</p>"
  frame = display_util.get_anomalies_dataframe(anomalies)
  return "<p class=bad>Anomalies found:</p>" + frame.to_html(escape=True)


def tuning_section(summary: Optional[Dict]) -> str:
  """RecommenderTuner's trials (its trials.json, None if absent) in the
  order they ran: each one's validation metrics and values (searched, and
  chosen after training), the first being the Trainer's own configuration
  and the best the one the Trainer then trained."""
  if not summary:
    return "<h2>Tuning</h2><p class=muted>no trials recorded</p>"
  trials = summary["trials"]
  objective = summary["objective"]
  metrics = [objective] + sorted(
      {m for t in trials for m in t["metrics"]} - {objective})
  names = list(dict.fromkeys(n for t in trials for n in t["values"]))
  header = ["trial"]
  for i, t in enumerate(trials):
    notes = (["the Trainer's configuration"] if i == 0 else []) + (
        ["best: trained"] if t["trial_id"] == summary["best_trial_id"]
        else [])
    header.append(" ".join([t["trial_id"]] + [f"({n})" for n in notes]))
  # One column per trial: a dozen values side by side stay readable.
  rows = ([[m] + [_rounded(t["metrics"].get(m)) for t in trials]
           for m in metrics] +
          [[n] + [_rounded(t["values"].get(n)) for t in trials]
           for n in names])
  out = ["<h2>Tuning (RecommenderTuner, validation window)</h2>",
         f"<p class=muted>{len(trials)} trials, each scored by "
         f"<code>{escape(objective)}</code> on the last 10% of the training "
         "period; values chosen after training (new-item serving, the "
         "ranking stage's weight) are each trial's own.</p>",
         table(header, rows)]
  again = summary.get("serving_choice")
  if again:
    values = lambda chosen: ", ".join(  # noqa: E731
        f"{escape(n)} {_rounded(v)}" for n, v in sorted(chosen.items()))
    out.append(
        f"<p>Trial {escape(again['trial_id'])}'s choices after training, "
        f"made again for its configuration trained {again['steps']} steps "
        f"(the Trainer's; trials trained {again['trial_steps']}): "
        f"{values(again['at_steps'])}, where its own model chose "
        f"{values(again['at_trial_steps'])}. The Trainer serves the "
        f"former (validation recall@10 "
        f"{_rounded(again['metrics'].get('val_recall_at_10'))} "
        "as served).</p>")
  scored = [(t["trial_id"], t["metrics"].get(objective)) for t in trials]
  if any(score is not None for _, score in scored):
    out.append(png(_tuning_figure(scored, summary["best_trial_id"],
                                  objective), "tuning trials"))
  return "\n".join(out)


def _tuning_figure(scored: List[Tuple], best_trial_id: str, objective: str):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axis = plt.subplots(figsize=(6, 2.8))
  axis.bar([t for t, _ in scored], [s or 0 for _, s in scored],
           color=["#176e2c" if t == best_trial_id else "#1f5fa8"
                  for t, _ in scored])
  low = min(s for _, s in scored if s is not None)
  axis.set_ylim(bottom=max(0.0, low * 0.9))
  axis.set_xlabel("trial (0: the Trainer's configuration; green: best)")
  axis.set_ylabel(objective)
  fig.tight_layout()
  return fig


def _rounded(value):
  return round(value, 4) if isinstance(value, float) else value


def training_curve_figure(curve: List[Dict]):
  """Loss and examples/s per step (the Trainer's ProgressLogger points)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  steps = [p["step"] for p in curve]
  fig, loss_axis = plt.subplots(figsize=(8, 3.2))
  loss_axis.plot(steps, [p["loss"] for p in curve], color="#1f5fa8")
  loss_axis.set_xlabel("step")
  loss_axis.set_ylabel("loss", color="#1f5fa8")
  rate_axis = loss_axis.twinx()
  rate_axis.plot(steps, [p["examples_per_second"] for p in curve],
                 color="#d07a1a", alpha=0.7)
  rate_axis.set_ylabel("examples / s", color="#d07a1a")
  loss_axis.set_title("Training: loss and throughput")
  fig.tight_layout()
  return fig


def metrics_figure(rows: List[Tuple]):
  """Candidate vs baseline bars for (metric, candidate, baseline) rows."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  names = [r[0] for r in rows]
  fig, axis = plt.subplots(figsize=(6, 3))
  x = range(len(rows))
  axis.bar([i - 0.2 for i in x], [r[1] for r in rows], 0.4,
           label="candidate", color="#1f5fa8")
  if any(r[2] is not None for r in rows):
    axis.bar([i + 0.2 for i in x], [r[2] or 0 for r in rows], 0.4,
             label="baseline (serving)", color="#999")
  axis.set_xticks(list(x))
  axis.set_xticklabels(names)
  axis.set_title("Retrieval on the eval split (seen items excluded)")
  axis.legend()
  fig.tight_layout()
  return fig


def _numeric(value) -> bool:
  if isinstance(value, bool):
    return False
  if isinstance(value, (int, float)):
    return True
  try:
    float(value)
    return True
  except (TypeError, ValueError):
    return False
