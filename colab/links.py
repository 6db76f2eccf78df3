"""Writes the repository URL into the notebooks: each one's install cell and its
"Open in Colab" badge, from one place.

    python colab/links.py            # rewrite colab/*.ipynb from pyproject.toml
    python colab/links.py --check    # exit 1 if a notebook is out of date (the tests run it)

The URL is pyproject.toml's [project.urls] Repository, or the environment variable
VBAYES_REPO where set. Without one, the install cell stops with one error line asking
for VBAYES_REPO, and the notebooks carry no badge (Colab opens notebooks from GitHub,
so a badge needs a github.com URL: https://github.com/OWNER/NAME).
"""

import json
import os
import re
import sys
import tomllib
from pathlib import Path

COLAB = Path(__file__).resolve().parent
PYPROJECT = COLAB.parent / "pyproject.toml"
ENV = "VBAYES_REPO"
BRANCH = "main"
BADGE_MARK = "colab-badge.svg"  # the line of the first markdown cell that holds the badge
URL_LINE = re.compile(r'^VBAYES_REPO = os\.environ\.get\("VBAYES_REPO"\) or "[^"]*"',
                      re.MULTILINE)


def repository_url() -> str:
  """VBAYES_REPO, else pyproject.toml's [project.urls] Repository, else ""."""
  if os.environ.get(ENV):
    return os.environ[ENV].strip()
  urls = tomllib.loads(PYPROJECT.read_text()).get("project", {}).get("urls", {})
  return urls.get("Repository", "").strip()


def badge(url: str, notebook: str) -> str | None:
  """The markdown of an "Open in Colab" badge for colab/<notebook>, or None for a URL
  that is not a GitHub repository's."""
  match = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?/?", url)
  if not match:
    return None
  owner, name = match.groups()
  target = f"https://colab.research.google.com/github/{owner}/{name}/blob/{BRANCH}/colab/{notebook}"
  return f"[![Open In Colab](https://colab.research.google.com/assets/{BADGE_MARK})]({target})"


def render(notebook: dict, name: str, url: str) -> dict:
  """The notebook with `url` as its install cell's default and its badge line (removed
  where there is no badge)."""
  cells = notebook["cells"]
  install = next(c for c in cells if c["cell_type"] == "code"
                 and URL_LINE.search("".join(c["source"])))
  line = f'VBAYES_REPO = os.environ.get("VBAYES_REPO") or {json.dumps(url)}'
  source = URL_LINE.sub(lambda _: line, "".join(install["source"]))
  install["source"] = source.splitlines(keepends=True)
  title = next(c for c in cells if c["cell_type"] == "markdown")
  lines = "".join(title["source"]).splitlines(keepends=True)  # "# Title\n", "\n", ...
  if len(lines) > 2 and BADGE_MARK in lines[2]:
    del lines[1:3]
  link = badge(url, name)
  if link is not None:
    lines[1:1] = ["\n", link + "\n"]
  title["source"] = lines
  return notebook


def _text(notebook: dict) -> str:
  return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
  check = argv[1:] == ["--check"]
  if argv[1:] not in ([], ["--check"]):
    print("error: usage: python colab/links.py [--check]", file=sys.stderr)
    return 1
  url, stale = repository_url(), []
  for path in sorted(COLAB.glob("*.ipynb")):
    text = path.read_text()
    new = _text(render(json.loads(text), path.name, url))
    if new != text:
      stale.append(path.name)
      if not check:
        path.write_text(new)
  if check and stale:
    print(f"error: {', '.join(stale)} out of date with the repository URL {url!r}: run "
          "python colab/links.py", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
