"""RecommenderTrainer's executor: the generic Trainer's, plus the catalogue.

A retrieval model must index every item, including items nobody rated before
the cutoff, but the stock Trainer only passes train and eval files to run_fn.
MovieLensExampleGen writes the catalogue as the `items` split of the same
Examples artifact; this executor hands run_fn that split's location through
custom_config, and likewise the optional ItemTextEmbedder artifact, so
lineage stays in ML Metadata and no path is hard-coded.
"""
from typing import Any, Dict, List

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.components.trainer import fn_args_utils
from tfx.types import artifact_utils
from tfx.types import standard_component_specs

from trainer import features
from trainer.config import CATALOG_PATTERN_KEY
from trainer.config import ITEM_EMBEDDINGS_KEY

ITEM_EMBEDDINGS_INPUT = "item_embeddings"


class Executor(trainer_executor.GenericExecutor):
  """GenericExecutor whose FnArgs.custom_config also names the catalogue
  split (CATALOG_PATTERN_KEY) and the item embeddings (ITEM_EMBEDDINGS_KEY)."""

  def _GetFnArgs(self, input_dict: Dict[str, List[types.Artifact]],
                 output_dict: Dict[str, List[types.Artifact]],
                 exec_properties: Dict[str, Any]) -> fn_args_utils.FnArgs:
    fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
    fn_args.custom_config = {**(fn_args.custom_config or {}),
                             **catalog_locations(input_dict)}
    return fn_args


def catalog_locations(input_dict: Dict[str, List[types.Artifact]]
                      ) -> Dict[str, str]:
  """custom_config entries naming the catalogue split and, if wired in, the
  item embeddings (shared with RecommenderTuner's executor)."""
  examples = input_dict[standard_component_specs.EXAMPLES_KEY]
  catalog_uri = artifact_utils.get_split_uri(examples, features.CATALOG_SPLIT)
  out = {CATALOG_PATTERN_KEY: catalog_uri + "/*"}
  if input_dict.get(ITEM_EMBEDDINGS_INPUT):
    out[ITEM_EMBEDDINGS_KEY] = artifact_utils.get_single_uri(
        input_dict[ITEM_EMBEDDINGS_INPUT])
  return out
