"""Trainer hyperparameters: one dataclass, defaults in one place.

The pipeline passes these through the Trainer's `custom_config`, and the CLI
flags map onto them one to one, so no constant is threaded by hand.
"""
import dataclasses
from typing import Any, Dict

# custom_config keys that are not hyperparameters: where the Trainer finds the
# catalogue split (set by RecommenderTrainer) and the pretrained text encoder.
CATALOG_PATTERN_KEY = "catalog_pattern"
TEXT_ENCODER_DIR_KEY = "text_encoder_dir"


@dataclasses.dataclass
class TrainerConfig:
  embedding_dim: int = 64
  hidden_units: int = 128
  batch_size: int = 1024
  learning_rate: float = 0.01
  # Softmax temperature over L2-normalised dot products (cosine / temperature).
  temperature: float = 0.05
  retrieval_weight: float = 1.0
  ranking_weight: float = 0.5
  # How many of the most recent history items the user tower pools.
  history_length: int = 20
  use_history: bool = True
  # Frozen pretrained BERT text vectors of items (+ a trained projection).
  use_text: bool = True
  text_max_length: int = 32
  # Weight of the search task (item text as query -> that item).
  search_weight: float = 0.5
  # Share of training candidates whose id is hidden (cold-start training).
  item_id_dropout: float = 0.2
  # tf.distribute strategy: default, mirrored, multi_worker_mirrored.
  distribution: str = "default"
  # Size of the exported index's top-k (the largest k a caller may ask for).
  max_k: int = 100
  # Also export a ScaNN-index twin (needs a TF Serving build with ScaNN ops).
  export_scann: bool = True
  scann_num_leaves: int = 40
  scann_leaves_to_search: int = 20
  scann_reordering: int = 500

  @classmethod
  def from_custom_config(cls, custom_config: Dict[str, Any]) -> "TrainerConfig":
    """Builds a config from the Trainer's custom_config, ignoring other keys."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in (custom_config or {}).items() if k in names})

  def to_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)
