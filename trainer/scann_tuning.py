"""ScaNN parameters for a catalogue size, from the serving benchmark's sweep.

`make bench-serving` sweeps ScaNN's leaves-to-search share and reordering
depth at several catalogue sizes, keeps, among the settings that reach
recall@100 >= 0.95 against exact search and are about as fast as the fastest
of them, the one with the highest recall, and writes them to
`scann_tuning.json` beside this module. The Trainer reads that table (nearest
benchmarked size) unless the config sets a knob explicitly, so the exported
index is tuned by measurement, not by guess; the export then checks the
twin on its own vectors and searches wider if they need it
(index.checked_scann).
"""
import dataclasses
import json
import math
import os
from typing import Optional

# The share of exact search's top k a ScaNN index must find: the bench
# chooses its table's knobs by it (recall@100), and the export checks each
# ScaNN twin against it on the twin's own vectors (index.checked_scann).
MIN_RECALL = 0.95
TUNING_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "scann_tuning.json")


@dataclasses.dataclass(frozen=True)
class ScannParams:
  num_leaves: int
  leaves_to_search: int
  reordering: int


def load_table(path: str = TUNING_FILE) -> dict:
  with open(path) as f:
    return json.load(f)


def tuned(num_items: int, table: Optional[dict] = None) -> ScannParams:
  """Applies the row benchmarked at the nearest size (log scale) to
  `num_items`: leaves scale with sqrt(num_items), the searched share and the
  reordering depth are taken as measured."""
  rows = (table or load_table())["rows"]
  row = min(rows, key=lambda r: abs(math.log(r["candidates"]) -
                                    math.log(max(num_items, 1))))
  leaves = min(max(1, round(row["leaves_per_sqrt_n"] * math.sqrt(num_items))),
               max(num_items, 1))
  search = min(leaves, max(1, math.ceil(row["leaves_to_search_share"] *
                                        leaves)))
  return ScannParams(leaves, search, int(row["reordering"]))


def resolve(num_items: int, num_leaves: int = 0, leaves_to_search: int = 0,
            reordering: int = 0) -> ScannParams:
  """Explicit (non-zero) knobs win; the rest come from the tuning table."""
  base = tuned(num_items)
  return ScannParams(num_leaves or base.num_leaves,
                     leaves_to_search or base.leaves_to_search,
                     reordering or base.reordering)
