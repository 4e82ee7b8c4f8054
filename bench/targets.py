"""Issue 13's targets, read off bench-quality's results: each target, what
the run measured, and whether it is met.

    python -m bench.targets [bench/results/quality.json]

Printed at the end of `make bench-quality` too, so a run says in one table
what it proves and what it does not. "Ahead" and "at least as good" are
read strictly on the one run's numbers; where the run has its
`full_gaps` row, one more line reads full against no_text by those
intervals (95% over the eval users; bench-seeds' intervals add seeds).
Exits 1 when a target is missed, strict lines included, so a script can
tell.
"""
import json
import os
import sys
from typing import Dict, List, NamedTuple

PEERS = ("popularity", "tfrs_tutorial", "ease", "ease_recency", "sasrec")
WARM_COLUMNS = ("recall@10", "recall@50", "recall@100", "ndcg@10")
# The numbers.
PEER_RATIO = 1.10
COLD_RECALL = 0.15
TIME_RATIO = 2.0


class Target(NamedTuple):
  target: str
  measured: str
  met: bool


def check(rows: List[Dict]) -> List[Target]:
  """The targets over quality.json's rows (a list of dicts with "name")."""
  by = {r["name"]: r for r in rows}
  full, out = by["full"], []
  peers = [p for p in PEERS if p in by]
  best = {column: max(peers, key=lambda p: by[p][column])
          for column in WARM_COLUMNS}
  for column, peer in best.items():
    out.append(Target(
        f"full ahead of every peer on {column}",
        f"{full[column]:.4f} vs {peer} {by[peer][column]:.4f}",
        full[column] > by[peer][column]))
  peer = best["recall@10"]
  ratio = full["recall@10"] / by[peer]["recall@10"]
  out.append(Target(f"full recall@10 >= {PEER_RATIO:.2f}x the best peer's",
                    f"{ratio:.3f}x {peer}", ratio >= PEER_RATIO))
  cold = by["full_cold_start"]["recall@100"]
  out.append(Target(f"full cold-item recall@100 > {COLD_RECALL}",
                    f"{cold:.4f}", cold > COLD_RECALL))
  cost = next((r["vs_no_text"] for r in rows
               if r["name"] == "text_tower_cost"), None)
  out.append(Target(f"time per epoch <= {TIME_RATIO:.0f}x no_text's",
                    "not measured" if cost is None else f"{cost:.2f}x",
                    cost is not None and cost <= TIME_RATIO))
  if "no_text" in by:
    no_text = by["no_text"]
    for column in WARM_COLUMNS:
      hits = round((full[column] - no_text[column]) * full["examples"]) \
          if column.startswith("recall") else None
      out.append(Target(
          f"full >= no_text on {column}",
          f"{full[column]:.4f} vs {no_text[column]:.4f}" + (
              f" ({hits:+d} of {full['examples']} interactions)"
              if hits is not None else ""),
          full[column] >= no_text[column]))
    gaps = next((r["gaps"].get("no_text") for r in rows
                 if r["name"] == "full_gaps"), None)
    if gaps:
      out.append(_within_noise(gaps))
    lead = (cold, by["no_text_cold_start"]["recall@100"])
    out.append(Target("full keeps its cold-start lead over no_text "
                      "(cold recall@100)", f"{lead[0]:.4f} vs {lead[1]:.4f}",
                      lead[0] > lead[1]))
  return out


def _within_noise(gaps: Dict[str, Dict[str, float]]) -> Target:
  """The same comparison read by the run's own intervals (full_gaps: 95%
  over resamples of the eval users): met when no warm column is behind
  beyond its interval. Printed beside the strict lines, not instead."""
  behind = [c for c in WARM_COLUMNS if gaps[c]["high"] < 0]
  widest = max(WARM_COLUMNS, key=lambda c: gaps[c]["high"] - gaps[c]["low"])
  return Target(
      "full >= no_text on every warm column within noise (95% over users)",
      ("behind beyond noise on " + ", ".join(behind)) if behind else
      f"every interval reaches 0 (widest: {widest} "
      f"{gaps[widest]['low']:+.4f}..{gaps[widest]['high']:+.4f})",
      not behind)


def print_targets(targets: List[Target]) -> None:
  width = max(len(t.target) for t in targets)
  print(f"\n{'target':<{width}}  {'measured':<48} met")
  for t in targets:
    print(f"{t.target:<{width}}  {t.measured:<48} {'yes' if t.met else 'NO'}")


def main(argv: List[str]) -> int:
  path = argv[1] if len(argv) > 1 else os.path.join(
      os.path.dirname(os.path.abspath(__file__)), "results", "quality.json")
  with open(path) as f:
    targets = check(json.load(f))
  print_targets(targets)
  return 0 if all(t.met for t in targets) else 1


if __name__ == "__main__":
  sys.exit(main(sys.argv))
