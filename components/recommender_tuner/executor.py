"""RecommenderTuner's executor: the stock Tuner's, plus the catalogue.

Trials train the same model as the Trainer, which indexes the whole
catalogue, so tuner_fn needs the `items` split (and, if wired in,
ItemTextEmbedder's vectors) as run_fn does: they are added to the
custom_config tuner_fn receives (see recommender_trainer/executor.py).

The stock `tuner_results.json` keeps each trial's objective only, best
first; `trials.json` beside it keeps every trial in the order it ran with
all its validation metrics, for the run report.
"""
import json
import os
from typing import Any, Dict, List

import tensorflow as tf
from tfx import types
from tfx.components.tuner import executor as tuner_executor
from tfx.types import artifact_utils
from tfx.types import standard_component_specs

from components.recommender_trainer.executor import catalog_locations
from trainer.config import TUNER_TRIALS_FILE


class Executor(tuner_executor.Executor):
  """The stock Tuner executor with the catalogue's locations added to
  custom_config, and every trial's metrics written out."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    key = standard_component_specs.CUSTOM_CONFIG_KEY
    custom_config = json.loads(exec_properties.get(key) or "null") or {}
    custom_config.update(catalog_locations(input_dict))
    exec_properties = {**exec_properties, key: json.dumps(custom_config)}
    if tuner_executor.get_tune_args(exec_properties):
      raise ValueError("TuneArgs is not supported by this Tuner's Executor.")
    # The stock Do's two steps, keeping the tuner for write_trials.
    tuner = tuner_executor.search(input_dict, exec_properties,
                                  self._get_tmp_dir())
    tuner_executor.write_best_hyperparameters(tuner, output_dict)
    write_trials(tuner, artifact_utils.get_single_uri(
        output_dict[standard_component_specs.TUNER_RESULTS_KEY]))


def write_trials(tuner, directory: str) -> None:
  """`trials.json`: {"objective", "best_trial_id", "trials": [{"trial_id",
  "status", "metrics": {name: value}, "values": {name: value}}] in the
  order the trials ran, "serving_choice"}; the best trial's values are
  what the Trainer receives (with serving_choice, its choices for a model
  trained the Trainer's steps)."""
  oracle = tuner.oracle
  best = oracle.get_best_trials(1)
  again = getattr(tuner, "serving_choice", None)
  trials = []
  for trial_id in oracle.start_order:
    trial = oracle.trials[trial_id]
    metrics = {name: trial.metrics.get_last_value(name)
               for name in trial.metrics.metrics}
    values = dict(trial.hyperparameters.values)
    if again and again["trial_id"] == trial_id:  # what its own model chose
      values.update(again["at_trial_steps"])
    trials.append({
        "trial_id": trial_id, "status": str(trial.status),
        "metrics": {k: float(v) for k, v in metrics.items() if v is not None},
        "values": values})
  summary = {"objective": oracle.objective.name,
             "best_trial_id": best[0].trial_id if best else None,
             "trials": trials,
             # The best trial's post-training choices made again for a
             # model trained the Trainer's steps (None when not needed).
             "serving_choice": again}
  with tf.io.gfile.GFile(os.path.join(directory, TUNER_TRIALS_FILE),
                         "w") as f:
    f.write(json.dumps(summary, indent=1))
