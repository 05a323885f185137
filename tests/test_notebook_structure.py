"""Every solution notebook follows the anatomy in docs/authoring.md (checked without running it)."""

import ast
import re

import nbformat
import pytest

from course_lib.dev.notebooks import is_reference_cell
from course_lib.paths import KERNEL_NAME, REPO_ROOT, assignment_ids

NOTEBOOKS = [REPO_ROOT / "solutions" / a / f"{a}.ipynb" for a in assignment_ids()]


def load(path):
    return nbformat.read(path, as_version=4)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_holds_only_literal_assignments(path):
    """papermill injects overrides after the parameters cell: derived values there would ignore them."""
    cells = [c for c in load(path).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one code cell must be tagged `parameters`"
    tree = ast.parse(cells[0].source)
    for statement in tree.body:
        assert isinstance(statement, ast.Assign | ast.AnnAssign), f"not an assignment: {ast.unparse(statement)}"
        assert statement.value is not None, f"a parameter without a value: {ast.unparse(statement)}"
        ast.literal_eval(statement.value)  # raises for anything derived from another name
    names = {target.id for s in tree.body for target in getattr(s, "targets", [getattr(s, "target", None)])}
    assert "QUICK" in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_opens_with_a_title_and_uses_the_course_kernel(path):
    nb = load(path)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.lstrip().startswith("# ")
    assert nb.metadata["kernelspec"]["name"] == KERNEL_NAME


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_test_cells_do_not_end_in_an_expression(path):
    """nbgrader reads the last value of a test cell as a partial score."""
    for cell in load(path).cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution") and cell.cell_type == "code":
            body = ast.parse(cell.source).body
            assert (body and not isinstance(body[-1], ast.Expr)) or _is_call(body[-1]), (
                f"{meta['grade_id']}: end the test cell with an assert or a call, not a bare value"
            )


def _is_call(node) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_deterministic_reference_cells(path):
    assert any(is_reference_cell(c) for c in load(path).cells), "mark at least one deterministic cell for nbval"


# --- Measured quantities in prose name their source (issue 16) -------------------------------------
# A number with a unit of time, memory, throughput or a ratio is a *measured* claim when its sentence
# says something was measured (took, costs, p50, latency, faster, ...). Such a sentence passes only
# when its cell names where the number comes from: this run, a section of docs/, a link, an issue.
_NUMBER = r"(?<![\w.])~?\d(?:[\d,]*\d)?(?:\.\d+)?"
_RANGE = rf"{_NUMBER}(?:\s?(?:-|\u2013|to)\s?{_NUMBER})?\s?"
_TIME = re.compile(rf"{_RANGE}(?:ms|µs|us|ns|s|secs?|seconds?|minutes?|min)(?![\w/])")
_MEMORY = re.compile(rf"{_RANGE}(?:[KMGT]i?B|kB)(?![\w/])")
_SHARE = re.compile(rf"{_RANGE}(?:%|x|\u00d7)(?![\w/])")
# Always a measurement: a rate ("511 req/s") or a ratio claim ("3x faster", "2.5 times slower").
_RATE = re.compile(rf"{_RANGE}(?:img|images|req|requests|items|samples|tokens)/s\b", re.IGNORECASE)
_RATIO_CLAIM = re.compile(rf"{_NUMBER}\s?(?:x|\u00d7|times)\s+(?:faster|slower|quicker|speed-?up)", re.IGNORECASE)
# The words that make a time, a share or a memory size a measurement rather than a setting or a fact.
_TIME_CUE = re.compile(
    r"\b(?:took|costs?|costing|ran|measured|timed|latency|latencies|throughput|overhead|faster|slower"
    r"|speed-?ups?|p50|p95|p99|median|wall)\b",
    re.IGNORECASE,
)
_MEMORY_CUE = re.compile(r"\b(?:took|measured|peak|held|RSS|used|grew)\b", re.IGNORECASE)
_SOURCE = re.compile(
    r"docs/[\w./-]+\.md|https?://|\]\(|\b[\w.-]+#\d+\b"  # a document, a link, an issue (keras#19458)
    r"|\bmeasure(?:d|ments?)\s+(?:above|below|here|in this)|\bthis run\b|\byour (?:own )?(?:table|numbers|run)"
    r"|\bon this machine\b|\bprinted (?:above|below)|\bthe (?:table|output|cell) (?:above|below)",
    re.IGNORECASE,
)
# Not measurements: the lecture's own claims (attributed in the sentence), arithmetic on given numbers
# ("8 / 0.0115 ≈ 696 items/s"), shapes ("224x224"), and worked examples in a hint.
_ATTRIBUTED_TO_LECTURE = re.compile(r"\blecture", re.IGNORECASE)
_ARITHMETIC = re.compile(r"\d\s*(?:[/\u00d7*=≈+]|\s-\s)\s*\d")
_EXAMPLE_HINT = re.compile(r"<details>\s*<summary>[^<]*example[^<]*</summary>.*?</details>", re.IGNORECASE | re.DOTALL)
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n\s*\n|\n\s*(?=[-*|#]|\d+\.\s)")


def unsourced_measurements(markdown: str) -> list[str]:
    """The sentences of one markdown cell that state a measured quantity while the cell names no source."""
    if _SOURCE.search(markdown):
        return []
    prose = _CODE.sub("`code`", _EXAMPLE_HINT.sub("", markdown))
    prose = re.sub(r"\*\*Time:\*\*[^.]*\.", "", prose)  # the notebook's estimated duration
    offenders = []
    for sentence in _SENTENCE_END.split(prose):
        sentence = " ".join(sentence.split())
        if not sentence or _ATTRIBUTED_TO_LECTURE.search(sentence) or _ARITHMETIC.search(sentence):
            continue
        text = re.sub(r"\d+\s?[x\u00d7]\s?\d+(?:\s?[x\u00d7]\s?\d+)*", "", sentence)  # shapes: 224x224x3
        time_cue, memory_cue = _TIME_CUE.search(text), _MEMORY_CUE.search(text)
        if (
            _RATE.search(text)
            or _RATIO_CLAIM.search(text)
            or ((_TIME.search(text) or _SHARE.search(text)) and time_cue)
            or (_MEMORY.search(text) and memory_cue)
        ):
            offenders.append(sentence)
    return offenders


def test_measurement_rule_tells_claims_from_facts():
    assert unsourced_measurements("`predict` costs ~50 ms per call on Keras 3.")
    assert unsourced_measurements("the same call took about 14 ms alone and 90 to 130 ms next to other jobs")
    assert unsourced_measurements("XLA is 3x faster here.")
    assert unsourced_measurements("Throughput reached 696 img/s at batch 8 (p50).")
    assert not unsourced_measurements("`predict` costs about 40 ms per call (docs/benchmarks.md, 2-core VM).")
    assert not unsourced_measurements("It took 12 ms in this run.")
    assert not unsourced_measurements("Fixed in [keras#19458](https://github.com/keras-team/keras/pull/1): 2x faster")
    assert not unsourced_measurements('The lecture promises "~2x faster inference".')
    assert not unsourced_measurements("ResNet50 takes 224x224 images and has 25,636,712 parameters, about 98 MiB.")
    assert not unsourced_measurements("8 items in 11.5 ms is 8 / 0.0115 ≈ 696 items/s.")
    assert not unsourced_measurements("Answer within 5 seconds; a float32 takes 4 bytes.")
    assert not unsourced_measurements("**Time:** about 45 minutes. **Hardware:** a CPU is enough.")
    assert not unsourced_measurements("Use `time.sleep(0.05)  # 50 ms took`.")
    assert not unsourced_measurements(
        "<details><summary>Hint 3: a worked example</summary>\nIt took 7 ms, so 2x faster.</details>"
    )


def test_measured_quantities_in_prose_name_their_source():
    """Every number in prose is measured in this run (rendered from variables) or quoted with its source."""
    offenders = []
    for path in NOTEBOOKS:
        for index, cell in enumerate(load(path).cells):
            if cell.cell_type == "markdown":
                offenders += [f"{path.stem} cell {index}: {s}" for s in unsourced_measurements(cell.source)]
    assert not offenders, (
        "measured quantities without a source (render them from this run's variables with "
        "IPython.display.Markdown, or quote docs/benchmarks.md with its machine):\n" + "\n".join(offenders)
    )


# Okabe & Ito's palette (distinguishable with every common colour-vision deficiency), black and white.
COLOUR_BLIND_SAFE = {"#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7", "#000000", "#ffffff"}
MERMAID = re.compile(r"```mermaid\n(.*?)```", re.S)
# Issue 16 item 5: where a picture explains better than prose.
DIAGRAMS = {
    "01-tensorflow-and-keras": "eager vs traced: what retraces",
    "03-model-formats": "the anatomy of a SavedModel folder",
    "06-serving": "the serving request path",
    "10-resource-estimation": "a GPU memory breakdown",
    "11-capstone": "the release path",
}


def _six_digits(colour):
    """#rgb as #rrggbb (#000 is #000000)."""
    return colour if len(colour) == 7 else "#" + "".join(2 * digit for digit in colour[1:])


def mermaid_diagrams(path):
    """(markdown cell source, diagram text) for every Mermaid block of a notebook."""
    return [
        (c.source, block) for c in load(path).cells if c.cell_type == "markdown" for block in MERMAID.findall(c.source)
    ]


@pytest.mark.parametrize("assignment", DIAGRAMS)
def test_notebook_has_its_diagram(assignment):
    path = REPO_ROOT / "solutions" / assignment / f"{assignment}.ipynb"
    assert mermaid_diagrams(path), f"{assignment} should have a Mermaid diagram of {DIAGRAMS[assignment]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_diagrams_use_colour_blind_safe_colours_and_have_alt_text(path):
    for markdown, diagram in mermaid_diagrams(path):
        colours = {_six_digits(c.lower()) for c in re.findall(r"#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{3})\b", diagram)}
        assert colours <= COLOUR_BLIND_SAFE, (
            f"{path.stem}: colours outside the Okabe-Ito palette: {colours - COLOUR_BLIND_SAFE}"
        )
        described = MERMAID.sub("", markdown).strip()
        assert len(described.split()) >= 8, f"{path.stem}: say in a sentence what the diagram shows (alt text)"


def hint_ladders(nb):
    """{exercise: [hint texts]} of the notebook's Hints cell (the ladders passed to course_lib.hints.Hints)."""
    for cell in nb.cells:
        if cell.cell_type != "code" or "Hints(" not in cell.source:
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Hints" and len(node.args) > 1:
                return ast.literal_eval(node.args[1])
    return {}


def solution_code_lines(source):
    """The substantial lines between BEGIN and END SOLUTION (comments and short lines left out)."""
    found, inside = [], False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped in ("### BEGIN SOLUTION", "### END SOLUTION"):
            inside = stripped == "### BEGIN SOLUTION"
        elif inside and len(stripped) >= 25 and not stripped.startswith("#"):
            found.append(" ".join(stripped.split()))
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_exercise_has_hidden_tests_and_hints_that_do_not_give_the_answer(path):
    """A hint may name the API (one call), never hand over the solution: its result line or several lines of it."""
    nb = load(path)
    ladders = {exercise: [" ".join(text.split()) for text in texts] for exercise, texts in hint_ladders(nb).items()}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            assert "### BEGIN HIDDEN TESTS" in cell.source, f"{path.stem} {meta['grade_id']}: no hidden tests"
        if cell.cell_type == "code" and meta.get("solution") and not meta.get("grade"):
            exercise = meta["grade_id"].removesuffix("-answer")
            hints = ladders.get(exercise, [])
            shown = [line for line in solution_code_lines(cell.source) if any(line in text for text in hints)]
            results = [line for line in shown if line.startswith(("return ", "yield "))]
            assert len(shown) < 2 and not results, f"{path.stem} {exercise}: the hints hold the solution: {shown}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_students_can_see_where_they_stand_from_the_notebook(path):
    """Issue 16: an in-notebook call shows which exercises pass and which hints were asked (course_lib.progress)."""
    assert any(c.cell_type == "code" and "from course_lib.progress import show" in c.source for c in load(path).cells)
