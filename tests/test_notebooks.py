"""Every lesson notebook runs under papermill with its default parameters, is committed
as ``make outputs`` writes it, and turns into a student copy without its solutions.

nbval (``make test``) re-executes the same notebooks and compares their outputs.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from helpers import notebooks

NOTEBOOKS = notebooks.lesson_notebooks()


def test_lessons_are_found() -> None:
    names = [nb.name for nb in NOTEBOOKS]
    assert names[0] == "00-check-setup.ipynb"
    assert names == sorted(names)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_with_default_parameters(notebook: Path, api: str, tmp_path: Path) -> None:
    executed = notebooks.execute(notebook, tmp_path / notebook.name)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_as_make_outputs_writes_it(notebook: Path) -> None:
    assert notebooks.problems(nbformat.read(str(notebook), as_version=4)) == []


def _cell(source: str, tags: list[str] | None = None, count: int | None = None) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": tags or []}, execution_count=count)
    cell.outputs = [nbformat.v4.new_output("stream", text=f"out of {source}\n")]
    return cell


def test_problems_finds_stale_counts_errors_and_run_metadata() -> None:
    nb = nbformat.v4.new_notebook(cells=[_cell("x = 1", ["parameters"], 1), _cell("y = 2", count=3)])
    nb.cells[1].outputs.append(nbformat.v4.new_output("error", ename="NameError", evalue="z", traceback=[]))
    nb.cells[1].metadata["papermill"] = {"duration": 1.0}
    found = notebooks.problems(nb)
    assert any("execution count 3, expected 2" in p for p in found)
    assert any("NameError" in p for p in found)
    assert any("papermill" in p for p in found)


def test_problems_needs_a_parameters_cell() -> None:
    nb = nbformat.v4.new_notebook(cells=[_cell("x = 1", count=1)])
    assert notebooks.problems(nb) == ["no code cell tagged 'parameters' (papermill needs one)"]


def test_normalised_notebook_has_no_problems() -> None:
    nb = nbformat.v4.new_notebook(cells=[_cell("x = 1", ["parameters"], 1), _cell("x + 1", ["solution"], 2)])
    nb.cells[0].metadata["papermill"] = {"duration": 1.0}
    nb.metadata["papermill"] = {"parameters": {}}
    assert notebooks.problems(notebooks.normalise(nb)) == []
    assert nb.cells[1].metadata["jupyter"] == {"source_hidden": True, "outputs_hidden": True}


def test_a_solution_whose_answer_shows_is_a_problem() -> None:
    shown = _cell("print(12)", ["solution"], 2)
    shown.metadata["jupyter"] = {"source_hidden": True}  # the code is hidden, its printed answer is not
    nb = nbformat.v4.new_notebook(cells=[_cell("x = 1", ["parameters"], 1), shown])
    assert notebooks.problems(nb) == ["cell 1: solution cell or its outputs not collapsed (run `make outputs`)"]


def test_student_copy_empties_solutions_and_keeps_exercises(tmp_path: Path) -> None:
    task = nbformat.v4.new_markdown_cell("### Exercise 1: count the scenes")
    answer = nbformat.v4.new_markdown_cell("Twelve scenes.", metadata={"tags": ["solution"]})
    nb = nbformat.v4.new_notebook(cells=[task, _cell("print(12)", ["solution"], 1), answer, _cell("items = 1", count=2)])
    source = tmp_path / "01-lesson.ipynb"
    nbformat.write(nb, str(source))

    [written] = notebooks.write_student_copies([source], tmp_path / "student")
    student = nbformat.read(str(written), as_version=4)

    assert student.cells[0].source == "### Exercise 1: count the scenes"
    assert student.cells[1].source == notebooks.STUDENT_PLACEHOLDER
    assert student.cells[2].source == "items = 1"  # the answer in text is gone
    assert len(student.cells) == 3
    assert all(c.outputs == [] and c.execution_count is None for c in student.cells if c.cell_type == "code")
    assert nbformat.read(str(source), as_version=4).cells[1].source == "print(12)"


def test_student_copies_of_the_lessons_hold_no_solution() -> None:
    for notebook in NOTEBOOKS:
        lesson = nbformat.read(str(notebook), as_version=4)
        student = notebooks.student_copy(lesson)
        solutions = [c.source for c in lesson.cells if notebooks.is_solution(c)]
        kept = "\n".join(c.source for c in student.cells)
        assert all(s not in kept for s in solutions if s.strip())
        exercises = [c.source for c in lesson.cells if c.cell_type == "markdown" and "Exercise" in c.source]
        assert exercises == [c.source for c in student.cells if c.cell_type == "markdown" and "Exercise" in c.source]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_api_url_is_a_parameter_with_the_embedded_default(notebook: Path) -> None:
    from helpers import paths

    lesson = nbformat.read(str(notebook), as_version=4)
    [parameters] = [c for c in lesson.cells if "parameters" in c.metadata.get("tags", [])]
    namespace: dict = {}
    exec(parameters.source, namespace)
    assert namespace["api_url"] == f"http://127.0.0.1:{paths.DEFAULT_PORT}"


@pytest.mark.parametrize("notebook", NOTEBOOKS[1:], ids=lambda p: p.stem)
def test_lessons_have_exercises_with_solutions(notebook: Path) -> None:
    lesson = nbformat.read(str(notebook), as_version=4)
    exercises = [c for c in lesson.cells if c.cell_type == "markdown" and c.source.lstrip().startswith("### Exercise")]
    solutions = [c for c in lesson.cells if c.cell_type == "code" and notebooks.is_solution(c)]
    assert exercises and len(solutions) >= len(exercises)


def _tiny_notebook(tmp_path: Path) -> Path:
    """A lesson-like notebook that writes a file and shows a figure."""
    source = tmp_path / "src" / "01-tiny.ipynb"
    source.parent.mkdir()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('api_url = "unused"\noutput_dir = "nowhere"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "from pathlib import Path\nimport matplotlib\nmatplotlib.use('agg')\nimport matplotlib.pyplot as plt\n"
            "Path(output_dir).mkdir(parents=True, exist_ok=True)\n(Path(output_dir) / 'answer.txt').write_text(api_url)\n"
            "from IPython.display import Image, display\nplt.plot([1, 2]); plt.savefig(Path(output_dir) / 'f.png')\n"
            "display(Image(filename=str(Path(output_dir) / 'f.png')))"
        ),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, str(source))
    return source


def test_run_all_writes_executed_notebooks_figures_and_outputs(tmp_path: Path) -> None:
    source = _tiny_notebook(tmp_path)
    notebooks.run_all([source], tmp_path / "build", {"api_url": "http://example.invalid"})

    assert (tmp_path / "build" / "notebooks" / "01-tiny.ipynb").exists()
    assert (tmp_path / "build" / "outputs" / "answer.txt").read_text() == "http://example.invalid"
    assert len(list((tmp_path / "build" / "figures" / "01-tiny").glob("cell*-0.png"))) == 1


def test_run_all_keeps_an_output_dir_that_is_given(tmp_path: Path) -> None:
    source = _tiny_notebook(tmp_path)
    mine = tmp_path / "mine"
    notebooks.run_all([source], tmp_path / "build", {"api_url": "given", "output_dir": str(mine)})
    assert (mine / "answer.txt").read_text() == "given"
    assert not (tmp_path / "build" / "outputs").exists()


def test_code_that_ran_stops_where_the_run_stopped(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(
        cells=[_cell("a = 1", count=1), nbformat.v4.new_markdown_cell("text"), _cell("raise ValueError", count=2),
               _cell("b = 2")]
    )
    executed = tmp_path / "executed.ipynb"
    nbformat.write(nb, str(executed))
    assert notebooks.code_that_ran(executed) == ["a = 1", "raise ValueError"]


def test_printed_is_the_stdout_lines_in_order() -> None:
    first, second = _cell("a = 1"), _cell("b = 2")
    first.outputs.append(nbformat.v4.new_output("stream", name="stderr", text="a warning\n"))
    second.outputs = [nbformat.v4.new_output("stream", name="stdout", text="two\nlines\n")]
    nb = nbformat.v4.new_notebook(cells=[first, nbformat.v4.new_markdown_cell("text"), second])
    assert notebooks.printed(nb) == ["out of a = 1", "two", "lines"]
