"""RecommenderTuner's executor: the stock Tuner's, plus the catalogue.

Trials train the same model as the Trainer, which indexes the whole
catalogue, so tuner_fn needs the `items` split (and, if wired in,
ItemTextEmbedder's vectors) as run_fn does: they are added to the
custom_config tuner_fn receives (see recommender_trainer/executor.py).
"""
import json
from typing import Any, Dict, List

from tfx import types
from tfx.components.tuner import executor as tuner_executor
from tfx.types import standard_component_specs

from components.recommender_trainer.executor import catalog_locations


class Executor(tuner_executor.Executor):
  """The stock Tuner executor with the catalogue's locations added to
  custom_config."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    key = standard_component_specs.CUSTOM_CONFIG_KEY
    custom_config = json.loads(exec_properties.get(key) or "null") or {}
    custom_config.update(catalog_locations(input_dict))
    super().Do(input_dict, output_dict,
               {**exec_properties, key: json.dumps(custom_config)})
