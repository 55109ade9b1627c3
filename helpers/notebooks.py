"""Execute the lesson notebooks, refresh their committed outputs, write student copies.

One module serves ``make run``, ``make outputs``, ``make student`` and the tests, so the
notebooks are executed the same way everywhere: papermill, a fresh ``python3`` kernel
of this environment, working directory ``notebooks/``.
"""

from __future__ import annotations

import argparse
import base64
import copy
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable

import nbformat

from helpers import paths

NOTEBOOK_DIR = paths.ROOT / "notebooks"
SOLUTION_TAG = "solution"
STUDENT_PLACEHOLDER = "# Your solution here"
# Metadata papermill and JupyterLab add on every run; committed notebooks carry none of it.
VOLATILE_CELL_METADATA = ("papermill", "execution", "ExecuteTime", "collapsed", "scrolled")
VOLATILE_NOTEBOOK_METADATA = ("papermill", "widgets")


def lesson_notebooks(folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """The lesson notebooks in teaching order (their names start with a number)."""
    return sorted(folder.glob("[0-9][0-9]-*.ipynb"))


def execute(
    notebook: Path,
    output: Path,
    parameters: dict[str, Any] | None = None,
    timeout: int = 1200,
) -> nbformat.NotebookNode:
    """Run ``notebook`` top to bottom with papermill and write the executed copy to ``output``.

    Raises papermill's ``PapermillExecutionError`` (the failing cell and its message)
    when a cell fails; the partly executed notebook is still written, for reading.
    """
    import papermill

    output.parent.mkdir(parents=True, exist_ok=True)
    return papermill.execute_notebook(
        str(notebook),
        str(output),
        parameters=parameters or {},
        cwd=str(notebook.parent),
        kernel_name="python3",
        execution_timeout=timeout,
        progress_bar=False,
    )


def code_that_ran(executed: Path) -> list[str]:
    """Sources of the code cells of an executed notebook that ran, the failing one last.

    papermill clears the execution counts before it runs, so a cell after a failure has none.
    """
    cells = nbformat.read(str(executed), as_version=4).cells
    return [cell.source for cell in cells if cell.cell_type == "code" and cell.get("execution_count")]


def printed(executed: nbformat.NotebookNode) -> list[str]:
    """The lines an executed notebook's code printed (its stdout), in order."""
    return [
        line
        for cell in executed.cells
        for output in cell.get("outputs", [])
        if output.output_type == "stream" and output.name == "stdout"
        for line in output.text.splitlines()
    ]


def is_solution(cell: nbformat.NotebookNode) -> bool:
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def normalise(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop run-specific metadata and collapse solution cells, as committed notebooks have them.

    A collapsed solution hides its outputs too: a printed answer gives the exercise away
    as surely as the code.
    """
    for key in VOLATILE_NOTEBOOK_METADATA:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        if is_solution(cell):
            cell.metadata.setdefault("jupyter", {})["source_hidden"] = True
            if cell.cell_type == "code":
                cell.metadata["jupyter"]["outputs_hidden"] = True
    return nb


def refresh_outputs(notebook: Path) -> None:
    """Execute ``notebook`` with its default parameters and store the result in place."""
    with tempfile.TemporaryDirectory() as tmp:
        executed = execute(notebook, Path(tmp) / notebook.name)
    nbformat.write(normalise(executed), str(notebook))


def problems(nb: nbformat.NotebookNode) -> list[str]:
    """What makes a committed notebook differ from what ``make outputs`` writes.

    Checks what nbval cannot see: errors kept as outputs, stale or out-of-order
    execution counts, unexecuted cells, papermill metadata, a missing parameters cell.
    """
    found = []
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    if not any("parameters" in c.metadata.get("tags", []) for c in code_cells):
        found.append("no code cell tagged 'parameters' (papermill needs one)")
    expected = 1
    for index, cell in enumerate(nb.cells):
        where = f"cell {index}"
        for key in VOLATILE_CELL_METADATA:
            if key in cell.metadata:
                found.append(f"{where}: run metadata '{key}' (run `make outputs`)")
        if cell.cell_type != "code":
            continue
        if not cell.source.strip():
            found.append(f"{where}: empty code cell")
            continue
        if cell.execution_count != expected:
            found.append(f"{where}: execution count {cell.execution_count}, expected {expected}")
        expected += 1
        for output in cell.outputs:
            if output.output_type == "error":
                found.append(f"{where}: error output {output.get('ename')}: {output.get('evalue')}")
            if output.output_type == "stream" and output.get("name") == "stderr" and "Traceback" in output.text:
                found.append(f"{where}: a traceback on stderr")
        hidden = cell.metadata.get("jupyter", {})
        if is_solution(cell) and not (hidden.get("source_hidden") and hidden.get("outputs_hidden")):
            found.append(f"{where}: solution cell or its outputs not collapsed (run `make outputs`)")
    for key in VOLATILE_NOTEBOOK_METADATA:
        if key in nb.metadata:
            found.append(f"notebook metadata '{key}' (run `make outputs`)")
    return found


def student_copy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The learner's version: solution code emptied, answers in text dropped, every output
    cleared, exercise text kept."""
    student = copy.deepcopy(nb)
    student.cells = [c for c in student.cells if not (c.cell_type == "markdown" and is_solution(c))]
    for cell in student.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = []
        cell.execution_count = None
        if is_solution(cell):
            cell.source = STUDENT_PLACEHOLDER
            for key in ("source_hidden", "outputs_hidden"):
                cell.metadata.get("jupyter", {}).pop(key, None)
    return student


def write_student_copies(notebooks: Iterable[Path], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for notebook in notebooks:
        target = out_dir / notebook.name
        nbformat.write(student_copy(nbformat.read(str(notebook), as_version=4)), str(target))
        written.append(target)
    return written


def save_figures(nb: nbformat.NotebookNode, out_dir: Path) -> list[Path]:
    """Write every PNG a notebook shows to ``out_dir`` (``cell<N>-<k>.png``)."""
    written = []
    for index, cell in enumerate(nb.cells):
        pngs = [o.data["image/png"] for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        for k, png in enumerate(pngs):
            out_dir.mkdir(parents=True, exist_ok=True)
            target = out_dir / f"cell{index:02d}-{k}.png"
            target.write_bytes(base64.b64decode(png))
            written.append(target)
    return written


def run_all(notebooks: Iterable[Path], build_dir: Path, parameters: dict[str, Any]) -> None:
    """``make run``: execute each notebook into ``build/notebooks`` and its figures into ``build/figures``."""
    import papermill

    for notebook in notebooks:
        target = build_dir / "notebooks" / notebook.name
        print(f"running {notebook.name} ...", flush=True)
        given = dict(parameters)
        if "output_dir" in papermill.inspect_notebook(str(notebook)):
            given.setdefault("output_dir", str(build_dir / "outputs"))
        executed = execute(notebook, target, parameters=given)
        figures = save_figures(executed, build_dir / "figures" / notebook.stem)
        print(f"  wrote {target.relative_to(build_dir.parent)} and {len(figures)} figures", flush=True)


def _parameter(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rhodes-notebooks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute notebooks into build/ (executed copies and figures)")
    run.add_argument("notebooks", nargs="*", type=Path)
    run.add_argument("-p", "--parameter", action="append", type=_parameter, default=[], metavar="NAME=VALUE")
    outputs = sub.add_parser("outputs", help="re-execute notebooks in place (the committed outputs)")
    outputs.add_argument("notebooks", nargs="*", type=Path)
    student = sub.add_parser("student", help="write learner copies without solutions to build/student/")
    student.add_argument("notebooks", nargs="*", type=Path)
    check = sub.add_parser("check", help="list what makes committed notebooks stale")
    check.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    notebooks = args.notebooks or lesson_notebooks()

    if args.command == "run":
        run_all(notebooks, paths.BUILD_DIR, dict(args.parameter))
    elif args.command == "outputs":
        for notebook in notebooks:
            print(f"refreshing outputs of {notebook} ...", flush=True)
            refresh_outputs(notebook)
    elif args.command == "student":
        for target in write_student_copies(notebooks, paths.BUILD_DIR / "student"):
            print(f"wrote {target}")
    elif args.command == "check":
        stale = {nb: problems(nbformat.read(str(nb), as_version=4)) for nb in notebooks}
        for nb, found in stale.items():
            for problem in found:
                print(f"{nb}: {problem}")
        if any(stale.values()):
            print("run `make outputs` to refresh the committed notebooks", file=sys.stderr)
            return 1
        print(f"{len(stale)} notebooks up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
