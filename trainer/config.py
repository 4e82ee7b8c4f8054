"""Trainer hyperparameters: one dataclass, defaults in one place.

The pipeline passes these through the Trainer's `custom_config`, and the CLI
flags map onto them one to one, so no constant is threaded by hand.
"""
import dataclasses
from typing import Any, Callable, Dict, List, Optional

from trainer import scann_tuning

# custom_config keys that are not hyperparameters: where the Trainer finds the
# catalogue split (set by RecommenderTrainer) and the pretrained text encoder.
CATALOG_PATTERN_KEY = "catalog_pattern"
TEXT_ENCODER_DIR_KEY = "text_encoder_dir"
# Where ItemTextEmbedder's artifact is (set by RecommenderTrainer when the
# pipeline wires one in); absent, the Trainer encodes the catalogue itself.
ITEM_EMBEDDINGS_KEY = "item_embeddings_uri"
# How many trials the Tuner's random search runs (trainer/tuning.py).
TUNE_TRIALS_KEY = "tune_trials"
# How many seeds train each trial, their validation metrics averaged.
TUNE_SEEDS_KEY = "tune_seeds"
# The Trainer's train steps: the Tuner makes the best trial's post-training
# choices again for a model trained that long (tuning.ValidationWindowTuner).
TUNE_SERVING_STEPS_KEY = "tune_serving_steps"
# What the Trainer writes to its ModelRun folder beside TensorBoard's logs:
# the in-process eval, steps and warm-start report; about 100 points of loss
# and examples/s. The replay table and the run report read them.
RUN_METRICS_FILE = "metrics.json"
TRAINING_CURVE_FILE = "training_curve.json"
# RecommenderTuner's every trial with its validation metrics, in the order
# they ran (beside the stock tuner_results.json); the run report reads it.
TUNER_TRIALS_FILE = "trials.json"


# TrainerConfig fields that decide the model's structure and what its
# weights mean (TrainerConfig.design).
DESIGN_FIELDS = ("use_text", "item_text_for", "text_in_history", "use_history",
                 "history_encoder", "history_length", "embedding_dim",
                 "hidden_units", "text_finetune_layers")


def value_parser(default: Any) -> Callable[[str], Any]:
  """How a field with this default reads its value from text (CLI flags,
  benchmarks' FIELD=VALUE): booleans from 1/true/yes, the rest by type."""
  if isinstance(default, bool):
    return lambda text: text.lower() in ("1", "true", "yes")
  return type(default)


@dataclasses.dataclass
class TrainerConfig:
  embedding_dim: int = 64
  hidden_units: int = 128
  batch_size: int = 1024
  # The defaults of learning_rate, sampling_correction and history_length
  # are bench-quality's validation choice among its candidates (README, its
  # table of searched values), so the pipeline trains what the README's
  # `full` row measures (with the item-item term, 0.005, logQ 1.0 and 20
  # recent items: below). Before the term, on the examples sorted by item id
  # (the run after ties stopped going by catalogue row): 0.005, 1.25 and
  # 20 recent items,
  # validation recall@10 0.1937, against 0.1913 with 50 recent items (the
  # previous run's choice, by 0.194 to 0.192) and 0.1894 for the earlier
  # defaults (0.01, 1.0, 20). 20 and 50 items are within seed noise of each
  # other (bench-seeds: sd 0.0018 of recall@10 on eval).
  learning_rate: float = 0.005
  # Seeds TF, NumPy and Python before the model is built and seeds the input
  # shuffle: initial weights and the order of examples follow it.
  seed: int = 1
  # Also switch on TF's deterministic kernels
  # (tf.config.experimental.enable_op_determinism). Process-wide and
  # irreversible: afterwards tf.timestamp and unseeded random ops raise, and
  # on GPU some scatter ops fall back to the CPU. Off by default: on CPU a
  # seeded run already repeats to the digit (two 60-step runs in one fresh
  # process were identical, with it and without it); it is for GPU kernels
  # that add in varying order. bench-continuous turns it on. It did not make
  # a run repeat late in a long-lived process that had run other pipelines
  # first: the replay's second, identical period-1 run was one float ulp
  # off by step 12 (see bench/continuous.py).
  deterministic: bool = False
  # Adam keeps an exponential moving average of the weights with this
  # momentum and the model ends training with the average (tf-keras'
  # use_ema; 0 turns it off). At a constant learning rate the last step's
  # weights are one noisy point: on the replay's period 1 (400 steps, per-
  # interaction recall over unseen items, seeds 1/2/3) the average gave
  # recall@100 0.6025/0.6012/0.6049 and recall@10 0.1674/0.1648/0.1684
  # against 0.5834/0.5785/0.5800 and 0.1573/0.1534/0.1512 for the last
  # weights (a cosine decay of the rate, seeds 1/2: 0.5916/0.5854).
  # Shorter runs average with a lower momentum, so the starting weights
  # weigh at most 2% at the end (task.make_optimizer: 0.968 for 120 warm
  # steps).
  weight_averaging: float = 0.98
  # Softmax temperature over L2-normalised dot products (cosine / temperature).
  temperature: float = 0.05
  # How much of the logQ correction the retrieval loss applies: each
  # in-batch candidate's logit is lowered by this times the log of its
  # sampling probability (1: the full correction; 0: none). 1.0 since
  # 2026-12-05 (1.25 before): with the item-item term, bench-quality's
  # five-seed validation chose 1.0 (recall@10 0.2166 against 0.2150), and
  # bench-seeds confirmed it on both windows, 5 of 5 seeds ahead on every
  # warm column (validation recall@10 0.2187 against 0.2161, eval 0.2060
  # against 0.2027; at 1.25 the full model's eval recall@10 was 1.079-1.095x
  # ease_recency's, at 1.0 1.100-1.111x).
  sampling_correction: float = 1.0
  retrieval_weight: float = 1.0
  ranking_weight: float = 0.5
  # How many of the most recent history items the user tower pools.
  history_length: int = 20
  # Short-term encoder over those items: "gru" or "attention" (a SASRec
  # block read at the newest item).
  history_encoder: str = "gru"
  use_history: bool = True
  # Frozen pretrained BERT text vectors of items (+ a trained projection).
  use_text: bool = True
  text_max_length: int = 32
  # With item_text_for="every_item": whether the items of a user's history
  # also carry their text (the candidate side always does). Without it the
  # user tower reads ids only, which on the validation window keeps text
  # from blurring warm users' tastes. ("new_items": history is ids only.)
  text_in_history: bool = True
  # Which items' vectors carry their text. "new_items": an item the model
  # has an id row for is that row alone, exactly as in the no-text model
  # (what users watched says more about a rated film than its blurb), and
  # only items without a row (new since training) are their text, mapped
  # into the id rows' space by a linear map regressed onto the trained rows
  # (LinMap-style); search then leaves the candidate space alone too. In
  # bench-quality it beat "every_item" on recall@10/50/100 and lifted
  # cold-item recall@10 from 0.032 to 0.087 (recall@100 0.341 to 0.397).
  # "every_item": id row plus projected text for every item, trained
  # jointly.
  item_text_for: str = "new_items"
  # With the text tower ("new_items"), outside training: a new item's
  # vector is share * where its text puts it + (1 - share) * the unknown-id
  # row's vector (what the no-text model serves every new item: trained
  # through id dropout, it knows how a generic new item of these genres and
  # year fares), normalised. 1: text alone.
  new_item_text_share: float = 0.25
  # With the text tower, the length of that vector in serving and
  # evaluation (training sees unit vectors): it multiplies a new item's
  # cosine with every query, in the index and in every re-scoring. 0 never
  # recommends a new item. Share and scale are chosen together on the
  # validation window, the newest release wave held out of its fit window
  # (validation.split, validation.choose_new_item_serving; bench-quality
  # and the Tuner): among the pairs with some text that keep the new items'
  # recall@100 at least at what the unknown-id row at full length gives
  # them, the best recall@10 (the unknown-id row alone only if none does).
  # 0.25 at 1: bench-quality's choice for its full model (no history id
  # dropout; five seeds on the validation window: recall@10 0.1939 and the
  # 213 new-item interactions' recall@100 0.562). Under history id dropout
  # 0.1 one seed chose 0.97, by 4 of 9,117 interactions, at a large cost in
  # new items (eval cold recall@100 0.413 against 0.508 at 1).
  new_item_score_scale: float = 1.0
  # Weight of that regression (item_text_for="new_items").
  text_map_weight: float = 1.0
  # Fine-tune this many top BERT blocks on the item side (0: frozen). Each
  # step then runs them over the whole catalogue: meant for a GPU.
  text_finetune_layers: int = 0
  # Weight of the search task: texts about an item, as queries, retrieve it.
  search_weight: float = 0.5
  # Which texts serve as training queries (comma-separated): the full item
  # text, the bare title (what people type), the genre list (topic queries).
  # With genre lists, genre search is better at the same recall@100 and
  # steady-state step time (measured side by side).
  search_queries: str = "item_text,title,genres"
  # Whether the search task's gradient also shapes the candidate tower
  # (only with item_text_for="every_item").
  search_updates_candidates: bool = True
  # search score: learned text tower + this * the direct BERT match between
  # query and item text (re-scores the tower's candidates).
  # 4.0: the best of 0/0.5/1/2/4 on genre queries disjoint from the
  # benchmark's (bench/quality.py VALIDATION_GENRE_QUERIES).
  search_text_match: float = 4.0
  # personalized_search: search score + this * the user's cosine, both
  # standardised over the query's candidates (see RecommenderModule).
  search_personalization: float = 0.5
  # "Because you watched": a history item explains a recommended item when
  # leaving it out lowers the item's score by at least this share of what
  # leaving out the strongest one does; of those, the one that explains the
  # fewest items above it (trainer/explanation.py). 1: always the strongest.
  # 0.5: on a demo model's 150 eval users' top 10, reasons per list 2.1 ->
  # 3.3, lists with a single reason 32% -> 16%, bench-scenarios' faithful
  # share 1 -> 0.99 (the sweep: bench/RESULTS.md, "Explanations").
  explanation_min_share: float = 0.5
  # The ranking stage of recommend*, and of the Evaluator's list: the
  # retrieval top `rerank_depth` eligible items ordered by retrieval score
  # (a cosine) + rerank_weight x the rating head's predicted rating (1-5
  # stars). Retrieval learns what a user watches next, the rating head how
  # much they like what they watch; a small weight lets the second break
  # retrieval's near-ties (the top 10's cosines span about 0.036). 0: the
  # retrieval order. With a depth of 100 the top 100 holds the same items
  # either way (recall@100 unchanged). 0.03: make bench-rerank's choice on
  # the validation window (best mean recall@10 of bench-quality's full
  # config over seeds 1-3, 0.1949 against 0.1928 at 0; NDCG@10 +0.0012,
  # recall@50 -0.0021, coverage@10 -0.016); on the eval period recall@10
  # +0.0028 and NDCG@10 +0.0013 in 3 of 3 seeds, coverage@10 -0.018.
  # With --tune, chosen for each trial's model instead (0 stays 0).
  rerank_weight: float = 0.03
  rerank_depth: int = 100
  # The item-item term (trainer/item_item.py): retrieval's top
  # `item_item_depth` eligible items by cosine are re-scored as cosine +
  # item_item_weight x EASE's score of the item given the user's history,
  # each history item weighted item_item_decay ** (how many items are
  # newer); EASE's L2 strength item_item_l2. 0 turns it off. The ranking
  # stage then orders the best rerank_depth of those. Defaults:
  # bench-quality's choice on ML-100K's validation window, the three
  # chosen together on the mean of three fit-window models
  # (quality.choose_item_item over weight 2/3/5/8 x L2 50..3200 x decay
  # 0.7..0.95; its run at 658bbfa, 2026-12-05): validation recall@10 0.2194
  # against 0.2174 at the earlier 5, 1600, 0.85 (ease_recency's L2 and
  # decay, the best for the term alone) and 0.1907 without the term; eval
  # recall@10 0.2098 against 0.2051. The depth of 300 scored as the whole
  # catalogue did. With --tune, each trial's models choose all three after
  # training (tuning.ValidationWindowTuner._choose_item_item; 0 stays 0).
  item_item_weight: float = 3.0
  item_item_decay: float = 0.85
  item_item_l2: float = 800.0
  item_item_depth: int = 300
  # Catalogues up to item_item_dense_items items keep the dense [N, N]
  # matrix; above, each row keeps its item_item_row_entries strongest
  # entries ([N, k]), and above item_item.MAX_ITEMS (10,000) EASE is fit
  # over the 10,000 most-rated items. The trade (make bench-item-item,
  # 2026-12-05): at 10,000 items the dense term costs a request 13 ms at
  # batch 1 on 2 cores, the pruned one 0.5 ms; on ML-100K pruning to 200
  # cost the demo's model eval recall@10 0.2041 -> 0.2019 (recall@100
  # 0.6509 -> 0.6524). 0 prunes every catalogue.
  item_item_dense_items: int = 10000
  item_item_row_entries: int = 200
  # With the text tower: what an item nobody rated in training gets of the
  # item-item rows and columns of its `item_item_neighbours` nearest rated
  # items by catalogue text (cosine-weighted mean; item_item.
  # borrow_for_new_items; dense or pruned rows), in the Trainer's export
  # and in a catalogue refresh. 0: none, new items are placed by the towers
  # alone (the term then pushes them down: cold-item recall@100 0.413 ->
  # 0.333 in bench-quality's run at e2d2bfa). A trade of new items' recall
  # against warm items', so off; 0.5 with 5 neighbours was the best on ML-100K's
  # validation window for new items at no cost in recall@10 (new items'
  # recall@100 0.432 -> 0.563, recall@50 -0.0015). Over five seeds
  # (bench-seeds' full_new_items) new items gained on both windows in every
  # seed, but validation recall@50 fell 0.0010 in every seed.
  item_item_new_items: float = 0.0
  item_item_neighbours: int = 5
  # Share of training candidates whose id is hidden (cold-start training).
  item_id_dropout: float = 0.2
  # Start from the latest blessed model's weights when the pipeline hands one
  # over (ids matched by string across vocabularies; trainer/warm_start.py).
  warm_start: bool = True
  # A warm-started run: copied weights become shrink * base + (1 - shrink) *
  # fresh init ("shrink and perturb", Ash & Adams 2020: a net trained
  # on top of its old self generalises worse than a fresh one; shrinking
  # keeps what it learned and lets it learn again), then it trains at its
  # own learning rate. Chosen on period 2 of `make bench-continuous`'s
  # replay under the earlier defaults (learning rate 0.01, logQ 1, 20
  # recent items; one seed; 120 warm steps vs 400 from scratch, recall@100
  # 0.3408, 120 from scratch 0.3119): shrink 1 at 0.002 0.3284, 1 at 0.01
  # with a 30-step ramp 0.3189; at 0.005, shrink 0.8 0.3299, 0.6 0.3371,
  # 0.4 0.3452; shrink 0.6 at 0.002 0.3267, at 0.01 0.3283. Adam's first steps
  # move every weight by about the learning rate, so an unshrunk model wants
  # a small one: on the test slice, 30 warm steps at 0.01 took recall@100
  # from 0.246 to 0.214, at 0.002 to 0.321.
  warm_start_shrink: float = 0.4
  warm_start_learning_rate: float = 0.005
  # weight_averaging of a warm-started run (its momentum is capped the same
  # way). Averaging a short run's weights seems to pull them toward what
  # suits every user, which new users' lists want and returning users' do
  # not: in period 4 of the replay (three seeds, from the stored period-3
  # models) 0.9 took returning users' per-user recall@100 from 0.333 to
  # 0.372 (from scratch 0.376) at -0.6% per interaction; over whole
  # chains (three seeds) it halved their period-4 gap (-5.0% against
  # -11.3%) without closing it and cost per-interaction recall@10 in every
  # period, so warm runs average as the others do (bench/RESULTS.md
  # "Period 4 per user").
  warm_start_weight_averaging: float = 0.98
  # Read an item in a user's history that has no id row (new since
  # training) from its catalogue text, where the candidate side already
  # places it, instead of the one unknown-id row every new item shares.
  # Serving only: training histories hold no such item. Off, as the
  # validation window chose (bench-quality's serving choice, seeds 1-3,
  # 2026-12-03): recall@10 -0.0012 / -0.0020 / -0.0011 with it, new items'
  # recall@100 up. On the eval period (bench-seeds' full_history_text row,
  # 5 seeds) it was ahead of no_text on recall@50, recall@100 and both
  # cold columns in every seed, 0.0002 behind on recall@10.
  new_item_history_text: bool = False
  # Share of training history items hidden behind their id: read from their
  # text through the text map where the model can (can_read_history_text),
  # else the unknown-id row. 0: histories in training are always fully known.
  # 0, as bench-quality's validation window chose over five seeds
  # (recall@10 0.1939 against 0.1922 with 0.1 and 0.1913 with 0.2; 0.1 kept
  # recall@50/@100 and new items: 0.4971 vs 0.4930, 0.577 vs 0.562). Seed 1
  # alone had chosen 0.1 (0.1961 vs 0.1927); on the eval period 0 is ahead
  # at recall@10 (0.1776 vs 0.1750) and NDCG@10, and bench-continuous's
  # warm start came within 1% of training from scratch per user in 2 of 3
  # periods without dropout, 1 of 3 with it (per interaction in all).
  # Without dropout the full model's users and known items are no_text's,
  # weight for weight (tests/test_model_loss.py).
  history_id_dropout: float = 0.0
  # tf.distribute strategy: default, mirrored, multi_worker_mirrored.
  distribution: str = "default"
  # Size of the exported index's top-k (the largest k a caller may ask for).
  max_k: int = 100
  # Also export a ScaNN-index twin (needs a TF Serving build with ScaNN ops).
  export_scann: bool = True
  # ScaNN knobs; 0 takes the value `make bench-serving` chose for a catalogue
  # of this size (trainer/scann_tuning.json, see trainer/scann_tuning.py).
  scann_num_leaves: int = 0
  scann_leaves_to_search: int = 0
  scann_reordering: int = 0
  # The share of exact search's top 10 and top 100 the exported ScaNN twin
  # must find on its own vectors; the export searches more of the index
  # until it does (index.checked_scann). 0 keeps the knobs above as they are.
  scann_min_recall: float = scann_tuning.MIN_RECALL

  @classmethod
  def from_custom_config(cls, custom_config: Dict[str, Any]) -> "TrainerConfig":
    """Builds a config from the Trainer's custom_config, ignoring other keys."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in (custom_config or {}).items() if k in names})

  def can_read_history_text(self) -> bool:
    """Whether new_item_history_text can apply to this model: text places
    new items (item_text_for "new_items") from the frozen encoder."""
    return (self.use_text and self.item_text_for == "new_items" and
            not self.text_finetune_layers)

  def check(self) -> None:
    """Refuses combinations that would train and then fail to export."""
    if self.new_item_history_text and not self.can_read_history_text():
      raise ValueError(
          "new_item_history_text reads the frozen text of new items: it "
          "needs use_text, item_text_for='new_items' and no "
          "text_finetune_layers")
    if self.rerank_weight < 0 or self.rerank_depth < 1:
      raise ValueError(
          f"rerank_weight {self.rerank_weight} must be at least 0 and "
          f"rerank_depth {self.rerank_depth} at least 1")
    if (self.item_item_weight < 0 or not 0 < self.item_item_decay <= 1 or
        self.item_item_l2 <= 0 or self.item_item_depth < 1 or
        self.item_item_new_items < 0 or self.item_item_neighbours < 1 or
        self.item_item_row_entries < 1 or self.item_item_dense_items < 0):
      raise ValueError(
          f"item_item_weight {self.item_item_weight} must be at least 0, "
          f"item_item_decay {self.item_item_decay} in (0, 1], item_item_l2 "
          f"{self.item_item_l2} above 0, item_item_depth "
          f"{self.item_item_depth}, item_item_neighbours "
          f"{self.item_item_neighbours} and item_item_row_entries "
          f"{self.item_item_row_entries} at least 1, item_item_new_items "
          f"{self.item_item_new_items} and item_item_dense_items "
          f"{self.item_item_dense_items} at least 0")
    if not 0 < self.explanation_min_share <= 1:
      raise ValueError(
          f"explanation_min_share {self.explanation_min_share}: a share of "
          "the strongest history item's effect, in (0, 1]")

  def to_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)

  def changes_from_defaults(self) -> Dict[str, Any]:
    """The fields set away from TrainerConfig's defaults (by the command
    line or the Tuner): what a run report needs to say how a model was
    trained."""
    default = TrainerConfig().to_dict()
    return {k: v for k, v in self.to_dict().items() if v != default[k]}

  def design(self) -> Dict[str, Any]:
    """The fields that decide what the weights mean (not just their
    shapes): a model of another design is no base to warm-start from."""
    return {name: getattr(self, name) for name in DESIGN_FIELDS}

  def with_changes(self, changes: List[str]) -> "TrainerConfig":
    """This config with "FIELD=VALUE" changes, as benchmarks take them on
    the command line (each value parsed as its field's default's type)."""
    names = {f.name for f in dataclasses.fields(self)}
    values = {}
    for change in changes:
      field, sep, text = change.partition("=")
      if not sep or field not in names:
        raise ValueError(f"{change!r}: expected FIELD=VALUE with a "
                         f"TrainerConfig field")
      values[field] = value_parser(getattr(self, field))(text)
    return dataclasses.replace(self, **values)

  def with_hyperparameters(self, hyperparameters: Optional[Dict[str, Any]]
                           ) -> "TrainerConfig":
    """This config with the Tuner's best values in place of its own.

    `hyperparameters` is a KerasTuner HyperParameters config ({"space": ...,
    "values": {name: value}}), as the Trainer's fn_args.hyperparameters
    holds it; every name must be a field here.
    """
    if not hyperparameters:
      return self
    values = hyperparameters.get("values", {})
    unknown = set(values) - {f.name for f in dataclasses.fields(self)}
    if unknown:
      raise ValueError(f"hyperparameters {sorted(unknown)} are not "
                       f"TrainerConfig fields")
    return dataclasses.replace(self, **values)
