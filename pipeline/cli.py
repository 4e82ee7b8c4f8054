"""`recsys`: the one command-line entry point (declared in setup.py).

  recsys data fetch                 download MovieLens 100K (registry wheel)
  recsys pipeline run [options]     run the TFX pipeline locally on Beam
  recsys pipeline compile --target kubeflow --output pipeline.json
  recsys recommend --user 42 --explain   top-k from the latest pushed
                                    model, each with why
  recsys search "space adventure"   free-text search of the catalogue
  recsys similar 50                 items like item 50 (the item page)
  recsys replay --periods 4         retrain period by period over the log
  recsys catalog refresh            re-index a new catalogue, no retraining
  recsys check-servable DIR         will stock TF Serving load it? (op list)
  recsys serve                      TF Serving protocol on 127.0.0.1:8500/8501
  recsys serve --model_config_file serving/deploy/models.config
                                    every model of a TF Serving config
  recsys demo                       fetch, run, then recommend for a few users

Every option maps onto a field of pipeline.configs.PipelineConfig or
trainer.config.TrainerConfig; `--help` on each subcommand lists them.
"""
import argparse
import dataclasses
import os
import sys
from typing import List, Optional

from pipeline import beam
from pipeline import configs
from trainer import contract
from trainer.config import TrainerConfig
from trainer.config import value_parser


def _add_pipeline_flags(p: argparse.ArgumentParser) -> None:
  d = configs.PipelineConfig()
  p.add_argument("--data-dir", default=d.data_dir,
                 help="folder with MovieLens files (recbole, ml-100k or ml-1m "
                 "layout); fetched automatically if it is the default and "
                 "empty")
  p.add_argument("--text-encoder-dir", default=d.text_encoder_dir,
                 help="pretrained all-MiniLM-L6-v2 folder (fetched "
                 "automatically if it is the default and empty)")
  p.add_argument("--output-dir", default=d.output_dir,
                 help="pipeline root, ML Metadata store and serving models")
  p.add_argument("--train-until", type=int, default=d.train_until,
                 help="last Unix timestamp used for training; later "
                 "interactions are eval (default: last --eval-fraction of "
                 "time)")
  p.add_argument("--eval-until", type=int, default=d.eval_until,
                 help="last Unix timestamp of the eval split (default: "
                 "everything after --train-until)")
  p.add_argument("--eval-fraction", type=float, default=d.eval_fraction,
                 help="share of the time span held out when --train-until "
                 "is not given")
  p.add_argument("--max-reject-fraction", type=float,
                 default=d.max_reject_fraction,
                 help="stop when more than this share of a table's rows is "
                 "malformed (rejects are written with reasons either way)")
  p.add_argument("--max-history", type=int, default=d.max_history,
                 help="earlier items kept per interaction")
  p.add_argument("--min-timestamp", type=int, default=d.min_timestamp,
                 help="earliest plausible interaction time (Unix seconds); "
                 "earlier rows are rejects (default 1995-01-01)")
  p.add_argument("--max-timestamp", type=int, default=d.max_timestamp,
                 help="latest plausible interaction time (default: now + "
                 "1 day)")
  p.add_argument("--train-steps", type=int, default=d.train_steps,
                 help="training steps (batches)")
  p.add_argument("--tune", action="store_true",
                 help="run the Tuner first: hyperparameters chosen on a "
                 "validation window at the end of the training period")
  p.add_argument("--tune-trials", type=int, default=d.tune_trials,
                 help="trials with --tune: the Trainer's own configuration "
                 "first, then random draws")
  p.add_argument("--tune-steps", type=int, default=d.tune_steps,
                 help="training steps per trial with --tune")
  p.add_argument("--tune-seeds", type=int, default=d.tune_seeds,
                 help="training runs (seeds 1..N) per trial with --tune, "
                 "their validation metrics averaged")
  p.add_argument("--min-recall-at-100", type=float, default=d.min_recall_at_100,
                 help="Evaluator threshold: no push below this eval recall@100")
  p.add_argument("--max-rmse", type=float, default=d.max_rmse,
                 help="Evaluator threshold: no push above this rating RMSE")
  p.add_argument("--max-recall-drop", type=float, default=d.max_recall_drop,
                 help="Evaluator: no push when recall@100 is this much below "
                 "the serving model's on the same eval data")
  p.add_argument("--max-rmse-increase", type=float,
                 default=d.max_rmse_increase,
                 help="Evaluator: no push when RMSE is this much above the "
                 "serving model's on the same eval data")
  p.add_argument("--beam-runner", default=d.beam_runner,
                 choices=beam.RUNNERS,
                 help="Beam runner preset (pipeline/beam.py)")
  p.add_argument("--beam-workers", type=int, default=d.beam_workers,
                 help="parallel Beam workers (processes for direct)")
  p.add_argument("--beam-arg", action="append", default=[],
                 help="extra Beam pipeline argument, repeatable "
                 "(e.g. --beam-arg=--project=my-gcp-project)")
  p.add_argument("--no-cache", action="store_true",
                 help="re-run every component even if its inputs are unchanged")
  t = p.add_argument_group("trainer (trainer/config.py)")
  for f in dataclasses.fields(TrainerConfig):
    flag = "--" + f.name.replace("_", "-")
    t.add_argument(flag, type=value_parser(f.default),
                   default=f.default, help=f"(default {f.default})")


def _local_abspath(path: str) -> str:
  """Absolute path for local folders; URIs (gs://, s3://) pass unchanged."""
  return path if "://" in path else os.path.abspath(path)


def pipeline_config(args: argparse.Namespace) -> configs.PipelineConfig:
  trainer = TrainerConfig(**{f.name: getattr(args, f.name)
                             for f in dataclasses.fields(TrainerConfig)})
  try:  # here, not minutes later in the Trainer
    trainer.check()
  except ValueError as e:
    raise SystemExit(f"trainer flags: {e}") from None
  return configs.PipelineConfig(
      data_dir=_local_abspath(args.data_dir),
      text_encoder_dir=_local_abspath(args.text_encoder_dir),
      output_dir=_local_abspath(args.output_dir),
      train_until=args.train_until, eval_until=args.eval_until,
      eval_fraction=args.eval_fraction,
      max_reject_fraction=args.max_reject_fraction,
      max_history=args.max_history, min_timestamp=args.min_timestamp,
      max_timestamp=args.max_timestamp, train_steps=args.train_steps,
      tune=args.tune, tune_trials=args.tune_trials,
      tune_steps=args.tune_steps, tune_seeds=args.tune_seeds,
      trainer=trainer, min_recall_at_100=args.min_recall_at_100,
      max_rmse=args.max_rmse, max_recall_drop=args.max_recall_drop,
      max_rmse_increase=args.max_rmse_increase, beam_runner=args.beam_runner,
      beam_workers=args.beam_workers, beam_extra_args=tuple(args.beam_arg),
      enable_cache=not args.no_cache)


def _console_progress(config: configs.PipelineConfig) -> None:
  if "://" not in config.output_dir:
    from pipeline import progress
    path = progress.configure(config.output_dir)
    print(f"Progress below; the full log is in {path}", flush=True)


def _ensure_data(config: configs.PipelineConfig) -> None:
  from pipeline import data
  defaults = configs.PipelineConfig()
  if config.data_dir == os.path.abspath(defaults.data_dir):
    data.fetch_movielens(config.data_dir)
  if (config.trainer.use_text and config.text_encoder_dir ==
      os.path.abspath(defaults.text_encoder_dir)):
    data.fetch_text_encoder(config.text_encoder_dir)


def cmd_data_fetch(args) -> int:
  from pipeline import data
  print(data.fetch_movielens(args.data_dir))
  return 0


def _reporting_stops(config: configs.PipelineConfig, run) -> int:
  """Runs `run()`; a gate's stop becomes a short report and exit status
  stops.EXIT_STOPPED (the traceback goes to run.log only)."""
  from pipeline import stops
  try:
    return run()
  except Exception as e:  # Only our gates' stops are reported, not hidden.
    stop = stops.find_stop(e)
    if stop is None:
      raise
    print(stops.report(stop, config.output_dir), file=sys.stderr)
    from pipeline import report
    path = report.latest_path(config.output_dir, config.metadata_path)
    if path:
      print(f"Run report: {path}", file=sys.stderr)
    return stops.EXIT_STOPPED


def cmd_pipeline_run(args) -> int:
  from pipeline import local_runner
  from pipeline import stops
  config = pipeline_config(args)
  _console_progress(config)
  _ensure_data(config)

  def run():
    path = local_runner.run(config)
    if path:
      print(f"Run report: {path}")
    verdict = stops.not_blessed_report(config.pipeline_root)
    if verdict:
      print(verdict, file=sys.stderr)
      return stops.EXIT_NOT_BLESSED
    return 0
  return _reporting_stops(config, run)


def cmd_replay(args) -> int:
  from pipeline import replay
  config = pipeline_config(args)
  _console_progress(config)
  _ensure_data(config)
  def run():
    rows = replay.replay(config, args.periods, args.warm_steps,
                         args.initial_fraction)
    print(replay.format_rows(rows))
    return 0
  return _reporting_stops(config, run)


def cmd_catalog_refresh(args) -> int:
  from pipeline import catalog_refresh
  result = catalog_refresh.refresh(
      os.path.abspath(args.data_dir),
      args.model_base_path or _model_base_path(args),
      args.max_reject_fraction, args.reembed_all)
  print(f"{result.items} items ({result.new_items} new, "
        f"{len(result.rejected)} rejected; {result.embedded} embedded, the "
        f"rest unchanged) published as {result.version_dir} in "
        f"{result.seconds:.1f}s")
  for reason, row in result.rejected:
    print(f"  rejected ({reason}): {row[:120]}")
  return 0


def cmd_pipeline_compile(args) -> int:
  from pipeline import kubeflow_runner
  path = kubeflow_runner.compile_pipeline(pipeline_config(args), args.output,
                                          image=args.image)
  print(f"Kubeflow Pipelines v2 spec written to {path}")
  return 0


def _model_base_path(args) -> str:
  return configs.serving_model_dir(os.path.abspath(args.output_dir))


def _user(args) -> dict:
  """The user fields to send: the flags, and for a --user that the
  --user-data folder knows, their profile and last rated films where the
  flags leave them out (a live service sends what it stores; without it,
  `--user 42` would ask for a stranger and could leave out nothing seen)."""
  history = [h for h in (args.history or "").split(",") if h]
  user = dict(user_id=args.user, age=args.age, gender=args.gender,
              occupation=args.occupation, history=history)
  if not args.user or args.user_data.lower() == "none":
    return user
  from serving import explorer
  try:
    known = explorer.ExplorerData(args.user_data).user(args.user)
  except FileNotFoundError as e:
    print(f"user {args.user}: no user data ({e}); sending the flags only",
          file=sys.stderr)
    return user
  if known is None:
    print(f"user {args.user} is not in {args.user_data}: a new user",
          file=sys.stderr)
    return user
  for field in ("age", "gender", "occupation"):
    user[field] = user[field] or known[field]
  if not history:
    user["history"] = [r["item_id"] for r in known["history"]]
  print(f"user {args.user} from {args.user_data}: {user['age']} "
        f"{user['gender']} {user['occupation']}; history: "
        + (f"their last {len(user['history'])} of {known['ratings']} rated "
           "films" if not history else "--history")
        + " (--user-data none: send only the flags)", file=sys.stderr)
  return user


def _rules(args) -> dict:
  """--exclude/--genres/--years -> contract.rule_inputs' arguments."""
  years = (0, 0)
  if args.years:
    low, _, high = args.years.partition("-")
    try:
      years = (int(low or 0), int(high or 0))
    except ValueError:
      raise SystemExit(f"--years {args.years!r}: use FROM-TO, e.g. "
                       "1990-1999, 1990- or -1979") from None
  split = lambda text: [v for v in (text or "").split(",") if v]  # noqa
  return dict(exclude=split(args.exclude), genres=split(args.genres),
              years=years)


def _model(args):
  """The gRPC client (--server) or the newest pushed version in-process:
  the same methods either way."""
  from serving import local_model
  if args.server:
    from serving import client
    return client.RecommenderClient(args.server, args.model_name,
                                    version_label=args.version_label)
  return local_model.load_latest(_model_base_path(args))


def cmd_recommend(args) -> int:
  from serving import local_model
  rules = _rules(args)  # bad flags fail before loading anything
  user = _user(args)
  model = _model(args)
  # Without --explain nothing shows the reasons: the fast signature.
  if args.server:
    result = model.recommend([user], args.k, args.exclude_seen, rules,
                             explain=args.explain)[0]
  else:
    result = model.recommend(**user, k=args.k, exclude_seen=args.exclude_seen,
                             rules=rules, explain=args.explain)
  show = (local_model.format_explained if args.explain
          else local_model.format_recommendations)
  print(show(args.user, result))
  return 0


def cmd_search(args) -> int:
  from serving import local_model
  user = _user(args)
  # Any user field set: personalized_search, the same user for every query.
  users = [user] * len(args.query) if any(user.values()) else None
  results = _model(args).search(args.query, args.k, users, _rules(args))
  for query, result in zip(args.query, results):
    print(local_model.format_recommendations(f"query {query!r}", result))
  return 0


def cmd_similar(args) -> int:
  from serving import local_model
  item = {"item_id": args.item, "title": args.title or "",
          "year": args.year or 0,
          "genres": [g for g in (args.item_genres or "").split(",") if g]}
  result = _model(args).similar([item], args.k, _rules(args))[0]
  print(local_model.format_recommendations(f"item {args.item}", result,
                                           "similar to"))
  return 0


def cmd_serve(args) -> int:
  from serving import batching
  from serving import server
  base = args.model_base_path or _model_base_path(args)
  params = None
  if args.enable_batching:
    params = (batching.BatchingParameters.from_file(
        args.batching_parameters_file) if args.batching_parameters_file
              else batching.BatchingParameters())
  models = None
  if args.model_config_file:
    from serving import model_config
    try:
      models = model_config.read(args.model_config_file)
    except (OSError, ValueError) as e:
      raise SystemExit(f"--model_config_file: {e}") from None
  server.serve_forever(server.Server(
      args.model_name, base, host=args.host, grpc_port=args.port,
      rest_port=args.rest_api_port, poll_seconds=args.poll_seconds,
      versions_to_keep=args.versions_to_keep,
      max_request_bytes=args.max_request_bytes, batching_parameters=params,
      max_request_rows=args.max_request_rows,
      rest_read_timeout=args.rest_read_timeout, models=models,
      explorer_data=_explorer_data(args.explorer_data)))
  return 0


def _explorer_data(data_dir: str):
  """The explorer's users and titles; none (the page still searches) when
  the folder has no MovieLens data."""
  from serving import explorer
  if data_dir.lower() == "none":
    return None
  try:
    return explorer.ExplorerData(data_dir)
  except FileNotFoundError as e:
    print(f"Explorer page without user data: {e}", file=sys.stderr)
    return None


def cmd_report(args) -> int:
  from pipeline import report
  output_dir = os.path.abspath(args.output_dir)
  try:
    print(report.write(output_dir, os.path.join(
        output_dir, configs.METADATA_FILE)))
  except LookupError as e:
    print(e, file=sys.stderr)
    return 1
  return 0


def cmd_check_servable(args) -> int:
  from serving import servable_check
  failed = False
  for path in args.path:
    report = servable_check.check(path)
    print("\n".join(report.lines()))
    failed |= not report.ok
  return 1 if failed else 0


def cmd_demo(args) -> int:
  from pipeline import demo
  config = pipeline_config(args)
  _console_progress(config)
  return _reporting_stops(config, lambda: demo.main(config))


def _add_model_location_flags(p: argparse.ArgumentParser) -> None:
  p.add_argument("--server", default=None,
                 help="host:port of a TF Serving gRPC endpoint (real or "
                 "`recsys serve`); without it the newest pushed version is "
                 "loaded in-process")
  p.add_argument("--model-name", default=contract.MODEL_NAME)
  p.add_argument("--version-label", default=None,
                 help="with --server: a version label of the server's model "
                 "config (e.g. stable, canary) instead of the newest version")
  p.add_argument("--output-dir", default=configs.PipelineConfig().output_dir)


def _add_rule_flags(p: argparse.ArgumentParser) -> None:
  p.add_argument("--exclude", default="",
                 help="comma-separated item ids never to return")
  p.add_argument("--genres", default="",
                 help="comma-separated genres; only items with one of them")
  p.add_argument("--years", default="",
                 help="release years FROM-TO, e.g. 1990-1999 or 1990-")


def _add_user_flags(p: argparse.ArgumentParser) -> None:
  p.add_argument("--user", default="", help="user id ('' or unknown: the "
                 "out-of-vocabulary path, profile and history still count)")
  p.add_argument("--age", type=int, default=0, help="user age (0: unknown)")
  p.add_argument("--gender", default="", help="M or F ('' unknown)")
  p.add_argument("--occupation", default="", help="e.g. student")
  p.add_argument("--history", default="",
                 help="comma-separated item ids, oldest first (default: "
                 "the --user's last 50 rated films in --user-data)")
  p.add_argument("--user-data", default=configs.PipelineConfig().data_dir,
                 help="MovieLens folder where a --user's profile and ratings "
                 "fill the fields not given (none: send only the flags)")


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="recsys", description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="command", required=True)

  data_p = sub.add_parser("data", help="fetch data sets")
  data_sub = data_p.add_subparsers(dest="data_command", required=True)
  fetch = data_sub.add_parser("fetch", help="download MovieLens 100K")
  fetch.add_argument("--data-dir", default=configs.PipelineConfig().data_dir)
  fetch.set_defaults(func=cmd_data_fetch)

  pipe = sub.add_parser("pipeline", help="run the TFX pipeline")
  pipe_sub = pipe.add_subparsers(dest="pipeline_command", required=True)
  run = pipe_sub.add_parser("run", help="run locally (LocalDagRunner + Beam)")
  _add_pipeline_flags(run)
  run.set_defaults(func=cmd_pipeline_run)
  comp = pipe_sub.add_parser(
      "compile", help="compile the same pipeline for an orchestrator "
      "(offline; per-run knobs become pipeline parameters)")
  comp.add_argument("--target", choices=("kubeflow",), default="kubeflow",
                    help="orchestrator (Kubeflow Pipelines v2 spec)")
  comp.add_argument("--output", default="pipeline.json",
                    help="output file; .json or .yaml")
  comp.add_argument("--image", default=None,
                    help="pipeline container image (see Dockerfile)")
  _add_pipeline_flags(comp)
  comp.set_defaults(func=cmd_pipeline_compile)

  rep = sub.add_parser(
      "replay", help="run the pipeline once per period of the interaction "
      "log, warm-starting each run from the latest blessed model")
  rep.add_argument("--periods", type=int, default=4,
                   help="equal periods after the initial window")
  rep.add_argument("--initial-fraction", type=float, default=0.5,
                   help="share of the time span in the initial window")
  rep.add_argument("--warm-steps", type=int, default=None,
                   help="training steps of a warm-started run (default: "
                   "--train-steps)")
  _add_pipeline_flags(rep)
  rep.set_defaults(func=cmd_replay)

  rpt = sub.add_parser(
      "report", help="(re)write the HTML report of the latest pipeline run, "
      "from ML Metadata: <output-dir>/report/<run>.html")
  rpt.add_argument("--output-dir", default=configs.PipelineConfig().output_dir)
  rpt.set_defaults(func=cmd_report)

  cat = sub.add_parser("catalog", help="the item catalogue of the served "
                       "model")
  cat_sub = cat.add_subparsers(dest="catalog_command", required=True)
  refresh = cat_sub.add_parser(
      "refresh", help="embed the catalogue file's new or changed items with "
      "the serving model, rebuild its index and push it as a new version "
      "(no training)")
  refresh.add_argument("--data-dir", default=configs.PipelineConfig().data_dir,
                       help="folder with the catalogue file (its layout's "
                       "item table)")
  refresh.add_argument("--output-dir",
                       default=configs.PipelineConfig().output_dir)
  refresh.add_argument("--model-base-path", default=None,
                       help="folder of numbered versions (default: "
                       "<output-dir>/serving/recommender)")
  refresh.add_argument("--max-reject-fraction", type=float, default=0.01,
                       help="stop when more item rows than this are "
                       "malformed")
  refresh.add_argument("--reembed-all", action="store_true",
                       help="run every row through the model's towers, not "
                       "only rows new or changed since the serving version")
  refresh.set_defaults(func=cmd_catalog_refresh)

  rec = sub.add_parser("recommend", help="top-k items for a user from the "
                       "latest pushed model")
  _add_user_flags(rec)
  rec.add_argument("-k", type=int, default=10, help="how many items (1-100)")
  seen = rec.add_mutually_exclusive_group()
  seen.add_argument("--include-seen", dest="exclude_seen",
                    action="store_false", help="keep the items given in "
                    "--history (signature recommend); by default they are "
                    "left out (recommend_unseen, TF Serving's default)")
  # The default since 2026-12-05; still accepted for scripts that pass it.
  seen.add_argument("--exclude-seen", dest="exclude_seen",
                    action="store_true", help=argparse.SUPPRESS)
  rec.set_defaults(exclude_seen=True)
  rec.add_argument("--explain", action="store_true",
                   help="print why each item: \"Because you watched ...\"")
  _add_rule_flags(rec)
  _add_model_location_flags(rec)
  rec.set_defaults(func=cmd_recommend)

  sim = sub.add_parser("similar", help="items nearest to an item (the item "
                       "page); a new item is placed by its title and genres")
  sim.add_argument("item", help="item id")
  sim.add_argument("--title", default="", help="for an item the model has "
                   "never seen")
  sim.add_argument("--year", type=int, default=0)
  sim.add_argument("--item-genres", default="",
                   help="comma-separated genres of a new item")
  sim.add_argument("-k", type=int, default=10, help="how many items (1-100)")
  _add_rule_flags(sim)
  _add_model_location_flags(sim)
  sim.set_defaults(func=cmd_similar)

  search = sub.add_parser("search", help="free-text search of the catalogue")
  search.add_argument("query", nargs="+", help="one or more queries")
  search.add_argument("-k", type=int, default=10, help="how many items (1-100)")
  _add_user_flags(search)  # Any of them: results re-ordered for that user.
  _add_rule_flags(search)
  _add_model_location_flags(search)
  search.set_defaults(func=cmd_search)

  check = sub.add_parser(
      "check-servable", help="list a SavedModel's ops and say whether stock "
      "TF Serving 2.16.1 (core TF + TF Text 2.12.1) can load it")
  check.add_argument("path", nargs="+", help="SavedModel directory or model "
                     "base path (its newest version)")
  check.set_defaults(func=cmd_check_servable)

  serve = sub.add_parser(
      "serve", help="serve pushed models over TF Serving's gRPC and REST "
      "APIs (local stand-in for tensorflow_model_server)")
  serve.add_argument("--model-base-path", "--model_base_path", default=None,
                     help="folder of numbered versions (default: "
                     "<output-dir>/serving/recommender)")
  serve.add_argument("--model-config-file", "--model_config_file",
                     default=None, help="TF Serving ModelServerConfig text "
                     "proto: serve every model in it (version policies and "
                     "labels included) instead of --model-name/"
                     "--model-base-path")
  serve.add_argument("--output-dir",
                     default=configs.PipelineConfig().output_dir)
  serve.add_argument("--model-name", "--model_name",
                     default=contract.MODEL_NAME)
  serve.add_argument("--host", default="127.0.0.1",
                     help="address to bind (127.0.0.1: this machine only)")
  serve.add_argument("--port", type=int, default=contract.DEFAULT_GRPC_PORT,
                     help="gRPC port")
  serve.add_argument("--rest-api-port", type=int,
                     default=contract.DEFAULT_REST_PORT, help="REST port")
  serve.add_argument("--poll-seconds", type=float, default=1.0,
                     help="how often to look for new versions")
  serve.add_argument("--versions-to-keep", type=int, default=1,
                     help="newest versions kept loaded (TF Serving's latest "
                     "policy)")
  serve.add_argument("--max-request-bytes", type=int,
                     default=contract.DEFAULT_MAX_REQUEST_BYTES,
                     help="larger requests get RESOURCE_EXHAUSTED")
  serve.add_argument("--max-request-rows", type=int,
                     default=contract.DEFAULT_MAX_REQUEST_ROWS,
                     help="requests with more rows get RESOURCE_EXHAUSTED")
  serve.add_argument("--rest-read-timeout", type=float, default=30.0,
                     help="seconds a REST client has to send its request")
  serve.add_argument("--enable-batching", "--enable_batching",
                     action="store_true",
                     help="merge concurrent requests into one model call, "
                     "as TF Serving's flag of the same name")
  serve.add_argument("--batching-parameters-file",
                     "--batching_parameters_file", default=None,
                     help="TF Serving BatchingParameters text proto, e.g. "
                     "serving/deploy/batching_parameters.txt")
  serve.add_argument("--explorer-data",
                     default=configs.PipelineConfig().data_dir,
                     help="MovieLens folder whose users and ratings the "
                     "explorer page at http://HOST:REST_PORT/ shows (none: "
                     "the page works without users)")
  serve.set_defaults(func=cmd_serve)

  demo = sub.add_parser("demo", help="fetch data, run the pipeline, show "
                        "recommendations and the evaluation table")
  _add_pipeline_flags(demo)
  demo.set_defaults(func=cmd_demo)
  return parser


def main(argv: Optional[List[str]] = None) -> int:
  args = build_parser().parse_args(argv)
  from absl import logging
  logging.set_verbosity(logging.INFO)
  return args.func(args)


if __name__ == "__main__":
  sys.exit(main())
