"""tuner_fn: the TFX Tuner entry point (`recsys pipeline run --tune`).

KerasTuner searches the few knobs that matter on a validation window carved
from the end of the training period (trainer/validation.py), never on the
eval period the Evaluator blesses on. Each trial trains the real model for
the Tuner's train steps and is scored by recall@10 with the user's earlier
items excluded, as `recommend_unseen` serves: new items placed, the
item-item term weighed and the top 100 ordered by the ranking stage as
chosen for that trial's model. The best
values go to the Trainer through the Tuner's `best_hyperparameters`
artifact and override the TrainerConfig fields of the same names
(TrainerConfig.with_hyperparameters).
"""
import dataclasses
from typing import Dict, List, Optional, Tuple

import keras_tuner as kt
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tfx import v1 as tfx

from trainer import catalog as catalog_lib
from trainer import item_embeddings
from trainer import item_item
from trainer import task
from trainer import validation
from trainer.config import CATALOG_PATTERN_KEY
from trainer.config import ITEM_EMBEDDINGS_KEY
from trainer.config import TEXT_ENCODER_DIR_KEY
from trainer.config import TUNE_SEEDS_KEY
from trainer.config import TUNE_SERVING_STEPS_KEY
from trainer.config import TUNE_TRIALS_KEY
from trainer.config import TrainerConfig
from trainer.text_tower import TextEncoder

OBJECTIVE = "val_recall_at_10"
SELECT_BY = "recall@10"  # the validation metric behind OBJECTIVE
# Chosen for each trial's model after training: TrainerConfig field ->
# validation.choose_new_item_serving's key.
NEW_ITEM_SERVING = {"new_item_text_share": "share",
                    "new_item_score_scale": "scale",
                    "new_item_history_text": "history_text"}
# Every TrainerConfig field a trial chooses after training (not searched).
CHOSEN_AFTER_TRAINING = (*NEW_ITEM_SERVING, *validation.ITEM_ITEM_KNOBS,
                         "rerank_weight")


def search_space(max_history: int, config: TrainerConfig = None
                 ) -> kt.HyperParameters:
  """Embedding size, temperature, learning rate, history length and encoder,
  the rating loss's weight against retrieval's, how much of the logQ
  correction to apply, and the share of history items hidden in training.
  Each knob's default is `config`'s value (TrainerConfig's defaults when
  None), added to its grid if the grid lacks it: the Trainer's own
  configuration is the first trial (SearchOracle).
  (How text enters items is not searched: text on every item lost to text
  for new items only in bench-quality and over five seeds in bench-seeds.
  The new-item share and scale, whether new items inside histories are
  read from their text, the item-item term's weight, L2 and decay and the
  ranking stage's weight are chosen for each trial's model after
  training.)"""
  config = config or TrainerConfig()
  hp = kt.HyperParameters()

  def choice(name, grid, default=None):
    default = getattr(config, name) if default is None else default
    values = [*grid, *([] if default in grid else [default])]
    if not isinstance(default, str):
      values.sort()
    hp.Choice(name, values, default=default)

  choice("embedding_dim", [32, 64, 128])
  choice("temperature", [0.03, 0.05, 0.1])
  choice("learning_rate", [0.003, 0.005, 0.01, 0.02])
  choice("history_length", sorted({min(n, max_history) for n in (10, 20, 50)}),
         default=min(config.history_length, max_history))
  choice("history_encoder", ["gru", "attention"])
  choice("ranking_weight", [0.1, 0.5, 1.0])
  choice("sampling_correction", [0.75, 1.0, 1.25])
  choice("history_id_dropout", [0.0, 0.1, 0.2])
  return hp


class SearchOracle(kt.oracles.RandomSearchOracle):
  """Random search over search_space, whose first trial is the Trainer's
  own configuration (the space's defaults): the search then never hands
  the Trainer a configuration that did worse on the validation window than
  the one it would have trained anyway (with a few trials, random draws
  alone often do: bench numbers in the README's quality section).

  What a trial chooses after training (CHOSEN_AFTER_TRAINING) is recorded
  among its values for the Trainer but never enters the space: a later
  trial would otherwise start from the last trial's choice (KerasTuner's
  console table showed it as that trial's value) and count as untried
  because of it."""

  def __init__(self, **kwargs):
    super().__init__(allow_new_entries=False, **kwargs)

  def populate_space(self, trial_id):
    if self.start_order:
      return super().populate_space(trial_id)
    # The space's defaults: the Trainer's configuration (search_space).
    return {"status": kt.engine.trial.TrialStatus.RUNNING,
            "values": self.get_space().values}

  def _compute_values_hash(self, values):
    # KerasTuner's duplicate check: by the searched knobs only.
    return super()._compute_values_hash(
        {k: v for k, v in values.items() if k not in CHOSEN_AFTER_TRAINING})


class ValidationWindowTuner(kt.Tuner):
  """Random search whose trials train the recommender and score it on the
  validation window (KerasTuner's documented custom `run_trial` path: the
  objective is a retrieval metric over the catalogue, not a Keras metric)."""

  def __init__(self, config: TrainerConfig, tft_output, catalog, fit,
               held_out, seen, seeds: int = 1, hyperparameters=None,
               objective=None, max_trials: int = 8, seed: int = None,
               serving_steps: Optional[int] = None, **kwargs):
    if seeds < 1:
      raise ValueError(f"tune_seeds must be at least 1, got {seeds}")
    super().__init__(oracle=SearchOracle(
        objective=objective, max_trials=max_trials, seed=seed,
        hyperparameters=hyperparameters), **kwargs)
    self._config, self._tft_output, self._catalog = config, tft_output, catalog
    self._fit, self._held_out, self._seen = fit, held_out, seen
    self._seeds = seeds
    # EASE fit on the fit window at each L2 of the grid, the Trainer's
    # own included: each trial's models choose their term from these
    # (_choose_item_item); new-item serving is chosen with the Trainer's
    # term (item_item.validation_term's, from the matrix already fit).
    borrowing = item_item.new_item_borrowing(config,
                                             catalog.text.get("item_text"))
    self._item_item_matrices = {
        l2: item_item.trained_matrix(fit.users, fit.items, len(catalog), l2,
                                     *borrowing, item_item.pruning(config))
        for l2 in {*validation.ITEM_ITEM_L2S, config.item_item_l2}
    } if config.item_item_weight else {}
    self._item_item = (config.item_item_weight * item_item.scores(
        self._item_item_matrices[config.item_item_l2], held_out.histories,
        config.item_item_decay) if config.item_item_weight else 0.0)
    self._serving_steps, self._trial_steps = serving_steps, None
    # on_search_end's record: the best trial's choices for its own model
    # and for one trained the Trainer's steps (None until then).
    self.serving_choice = None

  def run_trial(self, trial, steps: int) -> Dict[str, float]:
    self._trial_steps = steps
    metrics, served, chosen = self._train_and_choose(
        trial.hyperparameters.get_config(), steps)
    for name, value in chosen.items():  # saved for the Trainer
      _fix(trial.hyperparameters, name, value)
    logging.info("trial %s %s: validation recall@10 %.4f in retrieval "
                 "order with the Trainer's item-item term, %.4f as served; "
                 "recall@100 %.4f (mean of %d seeds)", trial.trial_id,
                 trial.hyperparameters.values, metrics["recall@10"],
                 served["recall@10"], served["recall@100"], self._seeds)
    return {**_served_metrics(served),
            "val_recall_at_10_retrieval_order": metrics["recall@10"]}

  def on_search_end(self):
    """The best trial's post-training choices (CHOSEN_AFTER_TRAINING), made
    again for its configuration trained `serving_steps` steps, the
    Trainer's, when trials train fewer.

    Trials compare configurations cheaply, but where new items go and how
    much the item-item term and the ranking stage weigh are choices for
    one trained model: a
    200-step trial chose new items at share 0.75 x 0.9 and the stage off
    for the defaults, which bench-quality's 400-step models serve at
    0.5 x 0.97 with the stage at 0.03. One more training per seed, on the
    fit window, fits them to a model trained as long as the served one."""
    super().on_search_end()
    best = self.oracle.get_best_trials(1)
    if (not best or not self._serving_steps or
        self._serving_steps == self._trial_steps):
      return
    trial = best[0]
    searched = {name: value for name, value in
                trial.hyperparameters.values.items()
                if name not in CHOSEN_AFTER_TRAINING}
    before = {name: trial.hyperparameters.values.get(name)
              for name in CHOSEN_AFTER_TRAINING}
    logging.info("choosing new-item serving, the item-item term and the "
                 "ranking stage again for trial %s trained %d steps (trials "
                 "trained %d)",
                 trial.trial_id, self._serving_steps, self._trial_steps)
    _, served, chosen = self._train_and_choose({"values": searched},
                                               self._serving_steps)
    for name, value in chosen.items():
      _fix(trial.hyperparameters, name, value)
    self.serving_choice = {
        "trial_id": trial.trial_id, "trial_steps": self._trial_steps,
        "steps": self._serving_steps,
        "at_trial_steps": {k: v for k, v in before.items() if v is not None},
        "at_steps": chosen,
        "metrics": _served_metrics(served)}
    logging.info("trial %s at %d steps: %s (at %d steps: %s); validation "
                 "recall@10 %.4f as served", trial.trial_id,
                 self._serving_steps, chosen, self._trial_steps, before,
                 served["recall@10"])

  def _train_and_choose(self, hyperparameters: Dict, steps: int):
    """Trains this Tuner's config with `hyperparameters` (a KerasTuner
    config) for `steps` on the fit window, once per seed, then chooses
    what is chosen after training for those models. (validation metrics
    in retrieval's order, the served list's metrics with its
    rerank_weight, {CHOSEN_AFTER_TRAINING field: value})."""
    # How new items are served, and how much the ranking stage weighs, are
    # chosen after training: the model is built with the new-item serving
    # knobs neutral (new_item_placements sets them for what it scores).
    config = dataclasses.replace(
        self._config.with_hyperparameters(hyperparameters),
        new_item_score_scale=1.0, new_item_text_share=1.0)
    tft_layer = self._tft_output.transform_features_layer()
    text = self._catalog.text.get(
        "item_text", np.zeros([len(self._catalog), 1], np.float32))
    # Items nobody rated in the fit window are scored as new items, as
    # the served model would score them (validation.new_item_rows).
    new_rows = validation.new_item_rows(self._fit, len(self._catalog))
    runs = [self._validate(config, tft_layer, steps, seed, new_rows, text)
            for seed in range(1, self._seeds + 1)]
    # With text: each seed's tables of new-item shares and scales, averaged,
    # then one choice for the trial (what the Trainer will serve).
    metrics, tried = validation.over_seeds([run.result for run in runs],
                                           SELECT_BY)
    chosen = {}
    if config.use_text:
      self._log_serving(tried)
      chosen = {name: metrics[key] for name, key in NEW_ITEM_SERVING.items()}
    vectors = self._served_vectors(config, runs, tft_layer, text, new_rows,
                                   metrics)
    cosines = [queries @ candidates.T for queries, candidates in vectors]
    term, chosen_term = self._choose_item_item(config, cosines)
    chosen.update(chosen_term)
    served = self._choose_rerank_weight(
        config, runs, vectors, [cosine + term for cosine in cosines])
    chosen["rerank_weight"] = served["weight"]
    return metrics, served, chosen

  def _validate(self, config: TrainerConfig, tft_layer, steps: int,
                seed: int, new_rows: np.ndarray, text: np.ndarray
                ) -> "_SeedRun":
    """Trains `config` on the fit window with `seed` (weights and data
    order). Its result, with text: its validation.serving_options (how it
    could serve items new to it); without: its validation metrics."""
    tf.keras.utils.set_random_seed(seed)
    model = task.build_model(config, self._tft_output, self._catalog)
    model.compile(optimizer=task.make_optimizer(config, steps))
    model.fit(self._fit.training_dataset(tft_layer, config.batch_size,
                                         seed=seed),
              steps_per_epoch=steps, epochs=1, verbose=0)
    if config.use_text:
      placements = validation.new_item_placements(
          model, tft_layer, self._catalog.raw, new_rows, text)
      return _SeedRun(model, placements, validation.serving_options(
          model, tft_layer, self._held_out, self._seen, text, placements,
          new_rows, SELECT_BY, config.can_read_history_text(),
          self._item_item))
    queries, _ = validation.user_queries(model, tft_layer, self._held_out,
                                         text, history_text=False)
    catalog = validation.ids_unknown(self._catalog.raw, new_rows)
    candidates = task.candidate_vectors(model, tft_layer, catalog, text)[:-1]
    return _SeedRun(model, {1.0: candidates}, validation.evaluate(
        queries @ candidates.T + self._item_item, self._held_out,
        self._seen), queries)

  def _served_vectors(self, config: TrainerConfig, runs, tft_layer,
                      text: np.ndarray, new_rows: np.ndarray, chosen: Dict
                      ) -> List[Tuple[np.ndarray, np.ndarray]]:
    """Each seed's (queries [n, d], candidates [N, d]) on the validation
    window, new items served as `chosen` (with text)."""
    if not config.use_text:
      return [(run.queries, run.placements[1.0]) for run in runs]
    return [(validation.user_queries(run.model, tft_layer, self._held_out,
                                     text, chosen["history_text"])[0],
             validation.new_item_candidates(run.placements, new_rows,
                                            chosen["share"], chosen["scale"]))
            for run in runs]

  def _choose_item_item(self, config: TrainerConfig, cosines):
    """The item-item term for this trial's models (cosines: each seed's
    [n, N] retrieval scores): weight, L2 and decay from the grid in
    validation (plus the Trainer's own), by the mean over seeds
    (validation.choose_item_item). A config with the term off keeps it
    off. ([n, N] weight x term or 0.0, {knob: value})."""
    off = (config.item_item_l2, config.item_item_decay)
    if not config.item_item_weight:
      return 0.0, dict(zip(validation.ITEM_ITEM_KNOBS, (0.0, *off)))
    best, rows = validation.choose_item_item(
        cosines, self._item_item_matrices, self._held_out, self._seen,
        {*validation.ITEM_ITEM_WEIGHTS, config.item_item_weight},
        {*validation.ITEM_ITEM_DECAYS, config.item_item_decay}, off,
        SELECT_BY)
    for row in rows:
      logging.info("  item-item weight %s, L2 %s, decay %s: validation "
                   "recall@10 %.4f", *[row[k] for k in
                                       validation.ITEM_ITEM_KNOBS],
                   row["recall@10"])
    chosen = {k: best[k] for k in validation.ITEM_ITEM_KNOBS}
    if not chosen["item_item_weight"]:
      return 0.0, chosen
    return chosen["item_item_weight"] * item_item.scores(
        self._item_item_matrices[chosen["item_item_l2"]],
        self._held_out.histories, chosen["item_item_decay"]), chosen

  def _choose_rerank_weight(self, config: TrainerConfig, runs, vectors,
                            scores: List[np.ndarray]) -> Dict:
    """The ranking stage's weight for this trial: each seed's model
    (vectors: its (queries, candidates) as served, scores: its retrieval
    scores with the chosen item-item term) swept over the candidate
    weights on the validation window (validation.rerank_sweep), the means
    compared. The objective is then the list the Trainer's model would
    serve, not retrieval's order (ranking_weight, a searched knob, shapes
    both). A config with the stage off (rerank_weight 0) keeps it off."""
    weights = (sorted({*validation.RERANK_WEIGHTS, config.rerank_weight})
               if config.rerank_weight else [0.0])
    sweeps = []
    for run, (queries, candidates), score in zip(runs, vectors, scores):
      stage = validation.RankingStage(run.model, queries, candidates, 0.0,
                                      config.rerank_depth)
      sweeps.append(validation.rerank_sweep(
          stage, score, self._seen, self._held_out.items, weights))
    best = validation.pick_rerank_weight(sweeps, SELECT_BY)
    for row in zip(*sweeps):
      logging.info("  rerank_weight %s: validation recall@10 %.4f",
                   row[0]["weight"],
                   float(np.mean([r["recall@10"] for r in row])))
    return best

  @staticmethod
  def _log_serving(tried) -> None:
    for chosen, _ in tried:
      logging.info("  new items in histories %s: share %s, scale %s, "
                   "validation recall@10 %.4f",
                   "from text" if chosen["history_text"]
                   else "as the unknown id",
                   chosen["share"], chosen["scale"], chosen["recall@10"])


@dataclasses.dataclass
class _SeedRun:
  """One seed of a trial: its model, its candidate vectors ({share: [N, d]}
  new-item placements with text, {1.0: [N, d]} without), its validation
  result (serving_options or metrics) and, without text, its queries."""
  model: object
  placements: Dict[float, np.ndarray]
  result: object
  queries: np.ndarray = None


def _served_metrics(served: Dict) -> Dict[str, float]:
  """A trial's validation metrics for the list as served (the objective
  first), from validation.pick_rerank_weight's row."""
  return {OBJECTIVE: served["recall@10"],
          "val_recall_at_100": served["recall@100"],
          "val_ndcg_at_10": served["ndcg@10"]}


def _fix(hyperparameters: kt.HyperParameters, name: str, value) -> None:
  """Records `value`, chosen after training, among the trial's values (what
  the Trainer reads from best_hyperparameters), outside the search space
  (SearchOracle)."""
  if name not in CHOSEN_AFTER_TRAINING:
    raise ValueError(f"{name} is not chosen after training")
  hyperparameters.values[name] = value


def tuner_fn(fn_args: tfx.components.FnArgs) -> tfx.components.TunerFnResult:
  """Splits the training period into fit and validation windows and returns
  the tuner; fn_args.custom_config carries TrainerConfig fields plus
  `tune_trials` and `tune_seeds`, and (set by RecommenderTuner) where the
  catalogue is."""
  custom = fn_args.custom_config
  config = TrainerConfig.from_custom_config(custom)
  tft_output = tft.TFTransformOutput(fn_args.transform_graph_path)
  encoder = (TextEncoder(custom[TEXT_ENCODER_DIR_KEY],
                         config.text_max_length) if config.use_text else None)
  catalog = catalog_lib.load(
      custom[CATALOG_PATTERN_KEY], tft_output, encoder,
      item_embeddings.needed_kinds(config.search_queries),
      custom.get(ITEM_EMBEDDINGS_KEY))
  row_of = {item.decode(): i for i, item in enumerate(catalog.ids)}
  files = [f for p in fn_args.train_files for f in tf.io.gfile.glob(p)]
  train = validation.Interactions.read(files, row_of)
  held = validation.split(train, catalog.years)
  logging.info("tuning on %d fit and %d validation interactions (%d items "
               "of the newest release wave held out of the fit window)",
               len(held.fit), len(held.held_out), int(held.wave.sum()))
  tuner = ValidationWindowTuner(
      config, tft_output, catalog, held.fit, held.held_out, held.seen,
      seeds=int(custom.get(TUNE_SEEDS_KEY, 1)),
      hyperparameters=search_space(task.history_width(tft_output), config),
      objective=kt.Objective(OBJECTIVE, direction="max"),
      max_trials=int(custom.get(TUNE_TRIALS_KEY, 8)), seed=1,
      serving_steps=custom.get(TUNE_SERVING_STEPS_KEY),
      directory=fn_args.working_dir, project_name="recommender",
      overwrite=True)
  return tfx.components.TunerFnResult(
      tuner=tuner, fit_kwargs={"steps": fn_args.train_steps})
