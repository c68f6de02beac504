"""The image's version, revision, source and tags for the git ref being built: the one place they
are decided, for the workflow's image job and for .ci/run alike (through scripts/build_image.sh and
scripts/push_image.sh, and the workflow's first image step, which stops a bad release early).

The version is always pyproject.toml's: on a `v*` tag, the tag must be `v<that version>`, or this
stops with one line and exit 2. Tags, for IMAGE (default `housing-mlops`):
  sha-<commit>                 always
  <branch>                     a branch (characters a Docker tag cannot hold become `-`)
  latest                       the default branch only (DEFAULT_BRANCH), never a release tag
  pr-<number>                  a pull request (refs/pull/<number>/merge)
  <version>, <major>.<minor>   a release tag v<version> (<major>.<minor> for X.Y.Z only)
These are docker/metadata-action's rules as the workflow used them (type=sha,format=long, ref
branch/pr, semver {{version}} and {{major}}.{{minor}}, latest on the default branch): written here
because that action runs only on GitHub, and CI here must tag and label the image as GitHub does.

The ref and commit are GitHub's variables, GITHUB_REF and GITHUB_SHA (set on every runner; .ci/run
sets GITHUB_REF to its branch); without GITHUB_REF, no tags; without GITHUB_SHA, the checkout's
HEAD. The source is $GITHUB_SERVER_URL/$GITHUB_REPOSITORY, else the origin remote.
Prints `version=`, `revision=`, `source=` and `tags=` (space-separated) lines: $GITHUB_OUTPUT's format.
Usage: python3 scripts/image_metadata.py [CHECKOUT]
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path


def git(checkout: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=checkout, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


class NotTheRelease(Exception):
    """A release tag that is not v<pyproject.toml's version>."""


def tags_for(image: str, ref: str, commit: str, version: str, default_branch: str) -> list[str]:
    """The image's tags for ``ref`` (see the module's docstring)."""
    names = [f"sha-{commit}"]
    pull = re.fullmatch(r"refs/pull/(\d+)/(?:merge|head)", ref)
    if ref.startswith("refs/heads/"):
        branch = ref.removeprefix("refs/heads/")
        names.append(re.sub(r"[^A-Za-z0-9_.-]", "-", branch))
        if branch == default_branch:
            names.append("latest")
    elif pull:
        names.append(f"pr-{pull[1]}")
    elif ref.startswith("refs/tags/v"):
        tag = ref.removeprefix("refs/tags/")
        if tag != f"v{version}":
            raise NotTheRelease(
                f"release tag {tag} is not pyproject.toml's version {version}: tag v{version}, or change the version"
            )
        names.append(version)
        if release := re.fullmatch(r"(\d+)\.(\d+)\.\d+", version):
            names.append(f"{release[1]}.{release[2]}")
    return [f"{image}:{name}" for name in names]


def main() -> None:
    checkout = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
    version = tomllib.loads((checkout / "pyproject.toml").read_text())["project"]["version"]
    commit = os.environ.get("GITHUB_SHA") or git(checkout, "rev-parse", "HEAD") or "unknown"
    if os.environ.get("GITHUB_SERVER_URL") and os.environ.get("GITHUB_REPOSITORY"):
        source = f"{os.environ['GITHUB_SERVER_URL']}/{os.environ['GITHUB_REPOSITORY']}"
    else:
        source = git(checkout, "remote", "get-url", "origin") or "unknown"
    ref = os.environ.get("GITHUB_REF", "")
    image = os.environ.get("IMAGE") or "housing-mlops"
    try:
        tags = tags_for(image, ref, commit, version, os.environ.get("DEFAULT_BRANCH") or "main") if ref else []
    except NotTheRelease as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"version={version}\nrevision={commit}\nsource={source}\ntags={' '.join(tags)}")


if __name__ == "__main__":
    main()
