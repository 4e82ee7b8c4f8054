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
    add_item_embeddings(self, RecommenderTrainerSpec, item_embeddings)


def add_item_embeddings(component: base_component.BaseComponent, spec_class,
                        item_embeddings: Optional[types.BaseChannel]) -> None:
  """Gives a stock component (Trainer, Tuner) the optional item-embeddings
  input its spec lacks.

  The stock __init__ validates its many arguments (run_fn vs module_file,
  train/eval args, custom_config) and builds its own spec, whose INPUTS has
  no slot for the embeddings. Rather than copy that validation, we let it
  run, then initialise the BaseComponent again with `spec_class` (a subclass
  of the stock spec, so the component's SPEC_CLASS check still holds)
  carrying the same values plus the extra input channel.
  """
  if item_embeddings is None:
    return
  spec = component.spec
  base_component.BaseComponent.__init__(component, spec=spec_class(
      **spec.exec_properties, **spec.inputs, **spec.outputs,
      **{ITEM_EMBEDDINGS_INPUT: item_embeddings}))
