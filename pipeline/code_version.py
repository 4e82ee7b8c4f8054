"""Content hashes of our own code, as execution properties for TFX's cache.

TFX caches an execution on its inputs and execution properties, not on the
code it runs. Transform, the Trainer and the Tuner name ours by module path
(`trainer.preprocessing.preprocessing_fn`, `trainer.task.run_fn`), so after
an edit to that code a re-run over the same data was served the old graph
or model from cache, and a pipeline root first run by older code went on
giving older results. Each of them carries the hash of the sources it runs
in its custom_config, so changed code re-runs it (and what it feeds).
ExampleGen keeps its explicit EXAMPLES_FORMAT_VERSION.
"""
import hashlib
import os
from typing import Iterable, Iterator

CODE_FINGERPRINT_KEY = "code_fingerprint"
# Folders and files relative to the folder holding our packages (the
# checkout, or site-packages when installed).
TRANSFORM_SOURCES = ("trainer/preprocessing.py", "trainer/features.py",
                     "trainer/contract.py")
TRAINER_SOURCES = ("trainer", "components/recommender_trainer",
                   "components/recommender_tuner")
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fingerprint(sources: Iterable[str], root: str = _ROOT) -> str:
  """A short hash of the names and bytes of every file under `sources`
  (compiled files left out): equal exactly when the code is."""
  digest = hashlib.sha256()
  for path in sorted(_files(sources, root)):
    digest.update(os.path.relpath(path, root).encode() + b"\0")
    with open(path, "rb") as f:
      digest.update(f.read() + b"\0")
  return digest.hexdigest()[:16]


def _files(sources: Iterable[str], root: str) -> Iterator[str]:
  for source in sources:
    path = os.path.join(root, source)
    if os.path.isfile(path):
      yield path
      continue
    for folder, dirs, files in os.walk(path):
      dirs[:] = [d for d in dirs if d != "__pycache__"]
      for name in files:
        if not name.endswith((".pyc", ".pyo")):
          yield os.path.join(folder, name)
