"""Runs that stop on purpose explain themselves in a few lines.

Our gates raise on purpose: too many malformed rows (TooManyRejects), an
implausible time split (ImplausibleSplit), schema anomalies
(SchemaAnomalies); and the Evaluator can decline to bless. Each is a
decision, not a crash, so the console gets what stopped the run, why, where
the details are and what to do, and the exit status is non-zero; the
framework's traceback goes to `<output_dir>/run.log` only.
"""
import os
import traceback
from typing import Optional

# Exit statuses of `recsys pipeline run` / `recsys replay` / `recsys demo`.
EXIT_STOPPED = 2      # a gate stopped the run
EXIT_NOT_BLESSED = 3  # the run finished, the model was not pushed

_ADVICE = {
    "TooManyRejects": "Fix the input rows (the rejects file gives each "
                      "reason) or raise --max-reject-fraction.",
    "ImplausibleSplit": "Check the data's timestamps, or choose the split "
                        "with --train-until.",
    "SchemaAnomalies": "Fix the data, or if the change is intended, update "
                       "schemas/schema.pbtxt.",
    "NotServable": "Export only ops TF Serving links (see `recsys "
                   "check-servable`); the serving version is unchanged.",
}


def stop_classes():
  from components.anomaly_gate.component import SchemaAnomalies
  from components.atomic_pusher.executor import NotServable
  from components.movielens_example_gen.executor import ImplausibleSplit
  from components.movielens_example_gen.executor import TooManyRejects
  return (TooManyRejects, ImplausibleSplit, SchemaAnomalies, NotServable)


def find_stop(error: BaseException) -> Optional[BaseException]:
  """Our gate's exception in `error`'s cause/context chain, if any (the
  orchestrator may wrap what a component raised)."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, stop_classes()):
      return error
    error = error.__cause__ or error.__context__
  return None


def report(stop: BaseException, output_dir: str) -> str:
  """The console text for a stopped run; appends the traceback to run.log."""
  log = os.path.join(output_dir, "run.log")
  try:
    with open(log, "a") as f:
      f.write("".join(traceback.format_exception(
          type(stop), stop, stop.__traceback__)))
  except OSError:
    log = "(run.log could not be written)"
  kind = type(stop).__name__
  lines = [f"Run stopped: {kind}", *[f"  {line}" for line in
                                     str(stop).splitlines()],
           f"What to do: {_ADVICE.get(kind, 'See the log.')}",
           f"Full traceback: {log}"]
  return "\n".join(lines)


def not_blessed_report(pipeline_root: str) -> Optional[str]:
  """Lines for a run whose latest Evaluator did not bless, else None."""
  from pipeline import evaluation
  try:
    rows, blessed = evaluation.evaluation_rows(pipeline_root)
  except FileNotFoundError:
    return None
  if blessed:
    return None
  overall = [r for r in rows if r[0] == "overall"]
  return "\n".join(
      ["Run finished, but the Evaluator did not bless the model: nothing "
       "was pushed, the serving version is unchanged.",
       *[f"  {metric:<26} {value:.4f}" for _, _, metric, value in overall],
       "What to do: compare with the thresholds (--min-recall-at-100, "
       "--max-rmse, --max-recall-drop) or train longer (--train-steps)."])
