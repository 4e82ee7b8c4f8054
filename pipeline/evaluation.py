"""The Evaluator's output as rows: what the demo, the stops report, the
replay table and the run report print. Light to import (no TFX runner)."""
import glob
import os
import re
from typing import List, Optional, Tuple

from trainer import contract


def latest_output(pipeline_root: str, component: str, name: str) -> str:
  dirs = glob.glob(os.path.join(pipeline_root, component, name, "*"))
  dirs = [d for d in dirs if os.path.basename(d).isdigit()]
  if not dirs:
    raise FileNotFoundError(f"{component} has produced no {name} yet")
  return max(dirs, key=lambda d: int(os.path.basename(d)))


def evaluation_rows(pipeline_root: str) -> Tuple[List[Tuple], Optional[bool]]:
  """(slice, output, metric, value) rows from the latest Evaluator run,
  and whether that run blessed the model."""
  evaluation = latest_output(pipeline_root, "Evaluator", "evaluation")
  blessing = latest_output(pipeline_root, "Evaluator", "blessing")
  return metric_rows(evaluation), is_blessed(blessing)


def is_blessed(blessing_uri: str) -> bool:
  return os.path.exists(os.path.join(blessing_uri, "BLESSED"))


def metric_rows(evaluation_uri: str, baseline: bool = False) -> List[Tuple]:
  """(slice, output, metric, value) rows of one Evaluator output: the
  candidate's, or with `baseline` the serving model's it was compared with
  (none when the run had no baseline)."""
  import tensorflow_model_analysis as tfma
  rows = []
  # With a baseline model, metrics are kept per model name.
  result = tfma.load_eval_result(
      evaluation_uri,
      model_name=tfma.BASELINE_KEY if baseline else tfma.CANDIDATE_KEY)
  if not result.slicing_metrics and not baseline:
    result = tfma.load_eval_result(evaluation_uri)
  for slice_key, per_output in result.slicing_metrics:
    name = ", ".join(f"{k}={v}" for k, v in slice_key) or "overall"
    for output, by_sub in per_output.items():
      for sub_key, metrics in by_sub.items():
        for metric, value in sorted(metrics.items()):
          v = value.get("doubleValue")
          if v is not None:
            rows.append((name, output, _metric_name(output, metric, sub_key),
                         v))
  rows.sort(key=lambda r: (r[0] != "overall", r[0], r[1], r[2]))
  return rows


def _metric_name(output: str, metric: str, sub_key: str) -> str:
  """Readable names: the mean of hit_at_100 is recall@100 (and so on);
  NDCG gets its k."""
  if (output in contract.RETRIEVAL_METRIC_NAMES and
      metric == "mean_prediction"):
    return contract.RETRIEVAL_METRIC_NAMES[output]
  k = re.search(r"(\d+)", sub_key or "")
  return f"{metric}@{k.group(1)}" if k and metric == "ndcg" else metric


def format_table(rows: List[Tuple], blessed: Optional[bool]) -> str:
  lines = [f"{'slice':<14} {'output':<11} {'metric':<26} {'value':>9}",
           "-" * 63]
  for name, output, metric, value in rows:
    lines.append(f"{name:<14} {output:<11} {metric:<26} {value:>9.4f}")
  lines.append(f"Evaluator verdict: {'BLESSED' if blessed else 'NOT blessed'}")
  return "\n".join(lines)
