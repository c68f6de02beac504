"""Get California Housing into scikit-learn's data folder, as `load-data` would, and check it.

The GitHub workflow's `data` job runs this once per run (on a cache miss), with patient retries:
the data set's origin answers 403 at times. The other jobs receive the file. .ci/run runs it too,
on the copy it placed where the download would have put it.

    python scripts/fetch_data.py [--retries 5] [--delay 20]
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from housing_predictor.errors import run_guarded
from stages.load_data import CACHE_FILE, fetch, validate


def main() -> None:
    parser = argparse.ArgumentParser(description="Fetch California Housing into scikit-learn's data folder.")
    parser.add_argument("--retries", type=int, default=5, help="more tries after a failed download (default 5)")
    parser.add_argument("--delay", type=float, default=20.0, help="seconds between tries (default 20)")
    args = parser.parse_args()
    X, y, feature_names = fetch(n_retries=args.retries, delay=args.delay)
    validate(X, y, feature_names)
    from sklearn.datasets import get_data_home

    cache = Path(get_data_home()) / CACHE_FILE
    digest = hashlib.sha256(cache.read_bytes()).hexdigest()
    print(f"California Housing: {len(y):,} rows in {cache} (sha256 {digest})")


if __name__ == "__main__":
    run_guarded(main)
