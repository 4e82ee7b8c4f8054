"""RecommenderTrainer: TFX's Trainer plus the catalogue the index is built from.

A retrieval model must index every item, including items nobody rated before
the cutoff, but the stock Trainer only passes train and eval files to run_fn.
MovieLensExampleGen writes the catalogue as the `items` split of the same
Examples artifact; this executor hands run_fn that split's location through
custom_config, and likewise the optional ItemTextEmbedder artifact, so
lineage stays in ML Metadata and no path is hard-coded.
"""
from typing import Optional

from tfx import types
from tfx.components import Trainer
from tfx.components.trainer import executor as trainer_executor
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.types.component_spec import ChannelParameter

from components.item_text_embedder.component import ItemEmbeddings
from trainer import features
from trainer.config import CATALOG_PATTERN_KEY, ITEM_EMBEDDINGS_KEY

ITEM_EMBEDDINGS_INPUT = "item_embeddings"


class RecommenderTrainerSpec(standard_component_specs.TrainerSpec):
  INPUTS = {
      **standard_component_specs.TrainerSpec.INPUTS,
      ITEM_EMBEDDINGS_INPUT: ChannelParameter(type=ItemEmbeddings,
                                              optional=True),
  }


class Executor(trainer_executor.GenericExecutor):

  def _GetFnArgs(self, input_dict, output_dict, exec_properties):
    fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
    examples = input_dict[standard_component_specs.EXAMPLES_KEY]
    catalog_uri = artifact_utils.get_split_uri(examples, features.CATALOG_SPLIT)
    fn_args.custom_config = dict(fn_args.custom_config or {})
    fn_args.custom_config[CATALOG_PATTERN_KEY] = catalog_uri + "/*"
    if input_dict.get(ITEM_EMBEDDINGS_INPUT):
      fn_args.custom_config[ITEM_EMBEDDINGS_KEY] = artifact_utils.get_single_uri(
          input_dict[ITEM_EMBEDDINGS_INPUT])
    return fn_args


class RecommenderTrainer(Trainer):
  """Same arguments as tfx.components.Trainer plus `item_embeddings`
  (ItemTextEmbedder's output, optional). `examples` must be raw
  MovieLensExampleGen output (with its `items` split) and `transform_graph`
  Transform's graph, applied inside the input pipeline and the export."""

  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

  def __init__(self, item_embeddings: Optional[types.BaseChannel] = None,
               **kwargs):
    super().__init__(**kwargs)
    if item_embeddings is None:
      return
    # Trainer builds a TrainerSpec; rebuild it as ours (a subclass, so the
    # SPEC_CLASS check still holds) with the extra input.
    spec = self.spec
    base_component.BaseComponent.__init__(self, spec=RecommenderTrainerSpec(
        **spec.exec_properties, **spec.inputs, **spec.outputs,
        **{ITEM_EMBEDDINGS_INPUT: item_embeddings}))
