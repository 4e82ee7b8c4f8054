"""RecommenderTuner: TFX's Tuner plus the catalogue the trials index and,
optionally, ItemTextEmbedder's vectors (see executor.py)."""
from typing import Optional

from tfx import types
from tfx.components import Tuner
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_component_specs
from tfx.types.component_spec import ChannelParameter

from components.item_text_embedder.component import ItemEmbeddings
from components.recommender_trainer.component import add_item_embeddings
from components.recommender_trainer.executor import ITEM_EMBEDDINGS_INPUT
from components.recommender_tuner import executor


class RecommenderTunerSpec(standard_component_specs.TunerSpec):
  INPUTS = {
      **standard_component_specs.TunerSpec.INPUTS,
      ITEM_EMBEDDINGS_INPUT: ChannelParameter(type=ItemEmbeddings,
                                              optional=True),
  }


class RecommenderTuner(Tuner):
  """Same arguments as tfx.components.Tuner plus `item_embeddings`
  (optional). `examples` must be raw MovieLensExampleGen output (with its
  `items` split) and `transform_graph` Transform's graph, as for
  RecommenderTrainer; its `best_hyperparameters` feed the Trainer."""

  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, item_embeddings: Optional[types.BaseChannel] = None,
               **kwargs):
    super().__init__(**kwargs)
    add_item_embeddings(self, RecommenderTunerSpec, item_embeddings)
