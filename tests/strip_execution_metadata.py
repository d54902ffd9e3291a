"""Remove the ``execution`` timestamps nbconvert/papermill write into code cells' metadata.

The book's execution cache (jupyter-cache) keys a chapter by its code cells *and their metadata*, so a
chapter re-executed at smoke only for its committed outputs would otherwise look changed to every
later ``python -m paper_repro book`` build and be executed again. Run after re-executing chapters:

    python tests/strip_execution_metadata.py book/**/*.ipynb
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def strip(path: Path) -> bool:
    """Strip one notebook in place (its JSON layout kept); True when it changed."""
    text = path.read_text()
    notebook = json.loads(text)
    changed = False
    for cell in notebook["cells"]:
        if cell.get("metadata", {}).pop("execution", None) is not None:
            changed = True
    if changed:
        path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    return changed


if __name__ == "__main__":
    changed = [p for p in map(Path, sys.argv[1:]) if strip(p)]
    print(f"stripped {len(changed)} of {len(sys.argv) - 1} notebook(s)")
