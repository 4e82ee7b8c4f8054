"""The run report: one self-contained HTML page per pipeline run.

Written by every local run (`outputs/report/<run>.html`) and again by
`recsys report`, from ML Metadata's record of the run (pipeline/lineage.py),
so it shows what that run read, checked, trained, judged and pushed: no
notebook, no network (plots are inlined PNGs, styles inline).

TFDV's interactive statistics view (Facets) loads its code from the web, so
the statistics are tables made from the same protos here; anomalies use
TFDV's own table helper.
"""
import datetime
import json
import os
from typing import Dict, Optional

import tensorflow as tf
from absl import logging

from pipeline import evaluation
from pipeline import lineage
from pipeline import report_sections
from pipeline.report_sections import escape as _e
from pipeline.report_sections import png
from pipeline.report_sections import table
from trainer import contract
from trainer.config import RUN_METRICS_FILE
from trainer.config import TRAINING_CURVE_FILE
from trainer.config import TUNER_TRIALS_FILE

REPORT_DIR = "report"
_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0 1em}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;
vertical-align:top}th{background:#f4f4f4}td.n{text-align:right;
font-variant-numeric:tabular-nums}.ok{color:#176e2c;font-weight:600}
.bad{color:#a4141a;font-weight:600}img{max-width:100%}
.muted{color:#666}
"""


def path_for(output_dir: str, run_name: str) -> str:
  """outputs/report/<run>.html, the run id made safe for any file system."""
  safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in run_name)
  return os.path.join(output_dir, REPORT_DIR, f"{safe}.html")


def write(output_dir: str, metadata_path: str) -> str:
  """Writes the report of the newest run in `metadata_path`; returns its
  path."""
  run = lineage.latest_run(metadata_path)
  page = render(run)
  path = path_for(output_dir, run.name)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path + ".tmp", "w", encoding="utf-8") as f:
    f.write(page)
  os.replace(path + ".tmp", path)
  logging.info("Run report: %s", path)
  return path


def latest_path(output_dir: str, metadata_path: str) -> Optional[str]:
  """The report of the newest run in the store, if one was written."""
  try:
    path = path_for(output_dir, lineage.latest_run(metadata_path).name)
  except Exception:  # pylint: disable=broad-except
    return None
  return path if os.path.exists(path) else None


def write_quietly(output_dir: str, metadata_path: str) -> Optional[str]:
  """write(), but a report that cannot be made is logged, never fatal: the
  run it describes has already finished."""
  try:
    return write(output_dir, metadata_path)
  except Exception:  # pylint: disable=broad-except
    logging.exception("Could not write the run report")
    return None


def render(run: lineage.Run) -> str:
  started = datetime.datetime.fromtimestamp(run.started).strftime(
      "%Y-%m-%d %H:%M:%S")
  body = [f"<h1>Pipeline run {_e(run.name)}</h1>",
          f"<p class=muted>started {started}</p>",
          _summary(run), _components(run)]
  examples = run.output("MovieLensExampleGen", "examples")
  if examples:
    body.append(report_sections.data_section(examples))
  statistics = run.output("StatisticsGen", "statistics")
  if statistics:
    body.append(report_sections.statistics_section(
        statistics, run.output("ExampleValidator", "anomalies")))
  tuner_results = run.output("RecommenderTuner", "tuner_results")
  if tuner_results:
    body.append(report_sections.tuning_section(
        _read_json(os.path.join(tuner_results, TUNER_TRIALS_FILE))))
  model_run = run.output("RecommenderTrainer", "model_run")
  if model_run:
    body.append(_training(model_run))
  evaluation_uri = run.output("Evaluator", "evaluation")
  if evaluation_uri:
    body.append(_evaluation(run, evaluation_uri))
  return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
          f"<title>Run {_e(run.name)}</title><style>{_STYLE}</style>"
          "</head><body>" + "\n".join(body) + "</body></html>")


def _summary(run: lineage.Run) -> str:
  blessing = run.output("Evaluator", "blessing")
  pushed = run.steps.get("AtomicPusher")
  props = pushed.output_properties.get("pushed_model", {}) if pushed else {}
  if blessing is None:
    verdict = "<span class=bad>no evaluation (the run stopped early)</span>"
  elif evaluation.is_blessed(blessing):
    verdict = "<span class=ok>BLESSED</span>"
  else:
    verdict = "<span class=bad>NOT blessed</span>"
  if props.get("pushed"):
    push = (f"pushed version <b>{_e(props.get('pushed_version'))}</b> to "
            f"<code>{_e(props.get('pushed_destination'))}</code>")
  else:
    push = "nothing pushed"
  return f"<p>Evaluator verdict: {verdict}; {push}.</p>"


def _components(run: lineage.Run) -> str:
  rows = [(name, step.state) for name, step in run.steps.items()]
  return "<h2>Components</h2>" + table(["component", "state"], rows)


def _training(model_run: str) -> str:
  out = ["<h2>Training</h2>"]
  metrics = _read_json(os.path.join(model_run, RUN_METRICS_FILE)) or {}
  warm = metrics.get("warm_start")
  rows = [(k, round(metrics[k], 4)) for k in (
      "steps", "train_seconds", "examples", "recall@100", "rmse")
          if k in metrics]
  rows.append(("warm start", "from the serving model: " + ", ".join(
      f"{k} {v}" for k, v in warm.get("carried_rows", {}).items()) +
      " rows carried" if warm else "no (trained from scratch)"))
  if "config_changes" in metrics:
    changes = metrics["config_changes"]
    rows.append(("configuration", ", ".join(
        f"{k} {v}" for k, v in sorted(changes.items()))
        if changes else "the Trainer's defaults"))
  scann = metrics.get("scann")
  if scann:
    rows.append(("ScaNN twin", (
        f"{scann['leaves_searched']} of {scann['leaves']} leaves searched, "
        f"reordering {scann['reordering']}: finds "
        f"{scann['recall@10']:.4f} of exact search's top 10 and "
        f"{scann['recall@100']:.4f} of its top 100")))
  out.append(table(["", "value"], rows))
  curve = _read_json(os.path.join(model_run, TRAINING_CURVE_FILE))
  if curve:
    out.append(png(report_sections.training_curve_figure(curve),
                   "training curve"))
  out.append(f"<p class=muted>TensorBoard: <code>tensorboard --logdir "
             f"{_e(model_run)}</code></p>")
  return "\n".join(out)


def _evaluation(run: lineage.Run, evaluation_uri: str) -> str:
  import tensorflow_model_analysis as tfma
  candidate = evaluation.metric_rows(evaluation_uri)
  baseline = {r[:3]: r[3]
              for r in evaluation.metric_rows(evaluation_uri, True)}
  changes = {(s, o, m[:-len("_diff")]): v for s, o, m, v in candidate
             if m.endswith("_diff")}
  rows = []
  for s, o, m, v in candidate:
    if m.endswith("_diff"):
      continue
    base = baseline.get((s, o, m))
    change = changes.get((s, o, "mean_prediction"))
    if change is None:
      change = changes.get((s, o, m))
    rows.append((s, o, m, _num(v), _num(base), _num(
        change if base is not None else None)))
  out = ["<h2>Evaluation (Evaluator, eval split)</h2>",
         "<p class=muted>baseline: the model serving when the run started "
         f"({_e(run.input('Evaluator', 'baseline_model') or 'none')})</p>",
         table(["slice", "output", "metric", "candidate", "baseline",
                "change"], rows)]
  validation = tfma.load_validation_result(evaluation_uri)
  failures = [(str(f.metric_key.name) + (" vs baseline" if
                                         f.metric_key.is_diff else ""),
               f.message)
              for per_slice in validation.metric_validations_per_slice
              for f in per_slice.failures]
  if failures:
    out.append("<p class=bad>Thresholds not met:</p>" +
               table(["metric", "why"], failures))
  else:
    out.append("<p class=ok>Every threshold met.</p>")
  overall = [(m, v, baseline.get((s, o, m))) for s, o, m, v in candidate
             if s == "overall" and o in contract.RETRIEVAL_METRIC_NAMES and
             not m.endswith("_diff")]
  if overall:
    out.append(png(report_sections.metrics_figure(overall), "metrics"))
  return "\n".join(out)


def _read_json(path: str) -> Optional[Dict]:
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.loads(f.read())


def _num(value) -> str:
  return "" if value is None else f"{value:.4f}"
