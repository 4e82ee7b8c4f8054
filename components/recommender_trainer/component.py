"""RecommenderTrainer: TFX's Trainer plus the catalogue the index is built
from and, optionally, ItemTextEmbedder's vectors (see executor.py)."""
from typing import Optional

from tfx import types
from tfx.components import Trainer
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_component_specs
from tfx.types.component_spec import ChannelParameter

from components.item_text_embedder.component import ItemEmbeddings
from components.recommender_trainer import executor
from components.recommender_trainer.executor import ITEM_EMBEDDINGS_INPUT


class RecommenderTrainerSpec(standard_component_specs.TrainerSpec):
  INPUTS = {
      **standard_component_specs.TrainerSpec.INPUTS,
      ITEM_EMBEDDINGS_INPUT: ChannelParameter(type=ItemEmbeddings,
                                              optional=True),
  }


class RecommenderTrainer(Trainer):
  """Same arguments as tfx.components.Trainer plus `item_embeddings`
  (ItemTextEmbedder's output, optional). `examples` must be raw
  MovieLensExampleGen output (with its `items` split) and `transform_graph`
  Transform's graph, applied inside the input pipeline and the export."""

  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, item_embeddings: Optional[types.BaseChannel] = None,
               **kwargs):
    super().__init__(**kwargs)
    if item_embeddings is None:
      return
    # Trainer.__init__ validates its many arguments (run_fn vs module_file,
    # train/eval args, custom_config) and builds a TrainerSpec, whose INPUTS
    # has no slot for the embeddings. Rather than copy that validation, we
    # let it run, then initialise the BaseComponent again with a
    # RecommenderTrainerSpec (a TrainerSpec subclass, so Trainer's
    # SPEC_CLASS check still holds) carrying the same values plus the extra
    # input channel.
    spec = self.spec
    base_component.BaseComponent.__init__(self, spec=RecommenderTrainerSpec(
        **spec.exec_properties, **spec.inputs, **spec.outputs,
        **{ITEM_EMBEDDINGS_INPUT: item_embeddings}))
