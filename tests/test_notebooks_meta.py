"""The notebooks are documentation: check their shape without executing them (nbval executes them).

Every ``notebooks/NN-*.ipynb`` must be paired with a jupytext ``py:percent`` file holding the same cells,
open with a markdown cell stating the question it answers, end with a markdown answer, carry at least
one figure in its stored outputs, fix its seed in the first code cell, store no error outputs, and stay
small enough to review (< 200 KB). ``notebooks/README.md`` must list each notebook.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
MAX_BYTES = 200_000


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def test_there_are_notebooks() -> None:
    assert PATHS, f"no notebooks found in {NOTEBOOKS}"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_paired_text_form(path: Path) -> None:
    py = path.with_suffix(".py")
    assert py.is_file(), (f"{path.name} has no paired {py.name}: "
                          f"run `jupytext --set-formats ipynb,py:percent {path}`")
    assert "format_name: percent" in py.read_text(encoding="utf-8"), f"{py.name} is not jupytext py:percent"
    jupytext = pytest.importorskip("jupytext", reason="the notebooks extra brings jupytext")
    text_cells = [(c.cell_type, c.source.strip()) for c in jupytext.read(py).cells]
    nb_cells = [(c["cell_type"], _source(c).strip()) for c in _load(path)["cells"]]
    assert len(text_cells) == len(nb_cells), (
        f"{path.name} has {len(nb_cells)} cells but {py.name} has {len(text_cells)}: out of sync; run "
        f"`jupytext --to ipynb --update {py}` and re-execute the notebook")
    for i, (a, b) in enumerate(zip(nb_cells, text_cells, strict=True)):
        assert a == b, (f"cell {i} of {path.name} differs from {py.name}; run "
                        f"`jupytext --to ipynb --update {py}` and re-execute the notebook")


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_question_first_answer_last(path: Path) -> None:
    cells = _load(path)["cells"]
    assert cells[0]["cell_type"] == "markdown", f"{path.name} must open with a markdown cell"
    first = _source(cells[0])
    assert re.search(r"\*\*Question:?\*\*", first) and "?" in first, (
        f"{path.name}'s first cell must state the question it answers (a '**Question:** ...?' line)")
    assert cells[-1]["cell_type"] == "markdown", f"{path.name} must end with a markdown cell (the answer)"
    last = _source(cells[-1])
    assert re.search(r"^#+\s*Answer", last, flags=re.M), f"{path.name}'s last cell must be headed 'Answer'"
    assert len(last.split()) >= 40, f"{path.name}'s answer is too short to answer anything"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_executed_with_a_figure_and_no_errors(path: Path) -> None:
    cells = [c for c in _load(path)["cells"] if c["cell_type"] == "code"]
    assert cells and all(c.get("execution_count") for c in cells), (
        f"{path.name} is not fully executed: nbval compares against stored outputs; run "
        f"`jupyter nbconvert --to notebook --execute --inplace {path}`")
    outputs = [o for c in cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"], f"{path.name} stores an error output"
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name} has no figure"
    seed_cell = _source(cells[0])
    assert re.search(r"^SEED = \d+", seed_cell, flags=re.M) and "default_rng(SEED)" in seed_cell, (
        f"the first code cell of {path.name} must fix the seed: "
        "SEED = ... and rng = np.random.default_rng(SEED)")


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_small(path: Path) -> None:
    size = path.stat().st_size
    assert size < MAX_BYTES, f"{path.name} is {size:,} bytes (limit {MAX_BYTES:,}): store smaller outputs"


def test_readme_lists_every_notebook() -> None:
    readme = (NOTEBOOKS / "README.md").read_text(encoding="utf-8")
    for path in PATHS:
        assert path.name in readme, f"notebooks/README.md does not link {path.name}"
