"""A real browser: JupyterLab started as `make lab` starts it, notebooks 01 and 11 run in Debian's Chromium.

Playwright drives /usr/bin/chromium (no browser download). `.ci/run` installs Chromium first; on a
developer machine without it the test is skipped with the command to install it.
"""

import os
import re
import sys
import time
from pathlib import Path

import nbformat
import pytest
from servers import free_port, running_server

from course_lib.dev.notebooks import strip_notebook

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
NOTEBOOK = "solutions/01-tensorflow-and-keras/01-tensorflow-and-keras.ipynb"
CAPSTONE = "solutions/11-capstone/11-capstone.ipynb"  # the longest run: servers, load tests, a promotion
SCREENSHOTS = REPO / "results" / "browser"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not os.path.exists(CHROMIUM):
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing in CI: .ci/run must install it", pytrace=False)
    pytest.skip(
        f"{CHROMIUM} not installed: `apt-get install chromium` to run the browser test", allow_module_level=True
    )


DIAGRAMS = "diagrams.ipynb"  # every Mermaid diagram of the course, one per cell, to render in the browser
MERMAID = re.compile(r"```mermaid\n.*?```", re.S)


def diagrams_notebook() -> nbformat.NotebookNode:
    """A notebook of the Mermaid blocks found in every solution notebook's markdown."""
    blocks = [
        block
        for path in sorted((REPO / "solutions").glob("*/*.ipynb"))
        for cell in nbformat.read(path, as_version=4).cells
        if cell.cell_type == "markdown"
        for block in MERMAID.findall(cell.source)
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(block) for block in blocks])
    notebook.metadata["kernelspec"] = {
        "name": "tf-course",
        "display_name": "Python 3 (TF course)",
        "language": "python",
    }
    return notebook


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    port = free_port()
    home = tmp_path_factory.mktemp("browser-home")
    # A scratch copy of the repository's notebook, so running it leaves no outputs in git; stripped of
    # the nbval reference outputs too: a stored "[5]:" prompt must not pass for a cell this run executed.
    root = tmp_path_factory.mktemp("browser-root")
    for notebook in (NOTEBOOK, CAPSTONE):
        (root / Path(notebook).parent).mkdir(parents=True)
        stripped = strip_notebook(nbformat.read(REPO / notebook, as_version=4), keep_references=False)
        nbformat.write(stripped, root / notebook)
    nbformat.write(diagrams_notebook(), root / DIAGRAMS)
    env = {**os.environ, "HOME": str(home), "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
    url = f"http://127.0.0.1:{port}"
    with running_server(
        [
            sys.executable,
            "-m",
            "course_lib",
            "lab",
            "--port",
            str(port),
            "--token",
            "browser",
            "--no-workspace",
            "--root",
            str(root),
            "--url",
            f"/lab/tree/{NOTEBOOK}",
        ],
        home / "lab.log",
        url=f"{url}/api",
        timeout=120,
        env=env,
        name="JupyterLab",
    ):
        yield url, root, home / "lab.log"


def fresh_workspace(lab: str, name: str, path: str) -> str:
    """The URL that opens `path` alone in a JupyterLab workspace of its own, reset: tabs that an
    earlier test left open (hidden, but still in the page) would answer this test's selectors."""
    return f"{lab}/lab/workspaces/{name}/tree/{path}?token=browser&reset"


def run_all(page) -> None:
    """Run > Run All Cells, on the kernel JupyterLab started when it opened the notebook (a fresh one).

    Not Restart and Run All: restarting right after start-up made jupyter_server drop the browser's
    kernel websocket now and then ("Replacing stale connection", then `struct.error` decoding the next
    message), and the kernel then stays "Starting" for the page: seen twice in full `make test` runs.
    """
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Run All Cells$")).click()


# The status bar's kernel item: the course kernel connected and idle. Not the toolbar's execution
# indicator, whose `data-status` starts as "idle" before the session exists: on a loaded machine, while
# JupyterLab still lists the running sessions ("No Kernel | Initializing"), a Run All clicked on that
# "idle" started a second kernel beside the first, and the cells were lost or JupyterLab asked for a kernel.
KERNEL_IDLE = "#jp-main-statusbar :text('Python 3 (TF course) | Idle')"


def fail_on_dialog(page, name: str) -> None:
    """A modal dialog takes every click: say which one instead of timing out on a click."""
    dialog = page.locator(".jp-Dialog")
    if dialog.count():
        page.screenshot(path=str(SCREENSHOTS / f"dialog-{name}.png"))
        raise AssertionError(f"JupyterLab shows a dialog over the notebook: {dialog.first.inner_text()!r}")


def save_and_read_code_cells(page, saved_path: Path) -> list:
    """Ctrl+S in JupyterLab, wait until the file changes, and return the saved notebook's code cells."""
    before = saved_path.stat().st_mtime
    fail_on_dialog(page, saved_path.stem)
    page.locator(".jp-Notebook").first.click()
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while saved_path.stat().st_mtime == before and time.monotonic() < deadline:
        time.sleep(0.5)
    # The file changes before JupyterLab has finished writing it: read it again until it is whole JSON.
    for _ in range(20):
        try:
            notebook = nbformat.read(saved_path, as_version=4)
            break
        except nbformat.reader.NotJSONError:
            time.sleep(0.5)
    else:
        notebook = nbformat.read(saved_path, as_version=4)  # still cut short after 10 s: let it fail loudly
    return [c for c in notebook.cells if c.cell_type == "code"]


def kernel_status(page) -> str:
    """What the status bar says of the kernel ("Python 3 (TF course) | Busy", "No Kernel | Initializing"),
    for a failure report: not the toolbar's indicator, which reads "idle" before any kernel exists."""
    item = page.locator("#jp-main-statusbar :text(' | ')")
    return item.first.inner_text() if item.count() else "no kernel item in the status bar"


def error_outputs(code_cells: list) -> list[str]:
    """Each error output of the saved notebook, with the first line of the cell that raised it."""
    return [
        f"cell {c.source.splitlines()[0] if c.source else ''!r}: {o.ename}: {o.evalue}"
        for c in code_cells
        for o in c.outputs
        if o.output_type == "error"
    ]


def lab_log_without_saves(log: Path, lines: int = 40) -> str:
    """The end of JupyterLab's log without the "Saving file" lines this test's Ctrl+S loop makes."""
    kept = [line for line in log.read_text(errors="replace").splitlines() if "Saving file at" not in line]
    return "\n".join(kept[-lines:])


@pytest.mark.slow  # a browser runs the notebook in JupyterLab
@pytest.mark.parametrize("notebook", [NOTEBOOK, CAPSTONE], ids=["01", "11-capstone"])
def test_notebook_runs_in_chromium_without_errors(lab, notebook):
    from playwright.sync_api import sync_playwright

    lab, root, lab_log = lab
    saved_path = root / notebook
    name = Path(notebook).stem
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    console = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        page.goto(fresh_workspace(lab, name, notebook))
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        page.wait_for_selector(KERNEL_IDLE, timeout=120_000)

        # nbgrader's JupyterLab tools are installed: its menu is in the menu bar.
        assert page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Nbgrader$")).count() == 1

        run_all(page)
        # Judge the run by the notebook JupyterLab saves (Ctrl+S every few seconds), not by the prompts on
        # screen: the notebook is windowed, so the prompts in view may belong to cells that have not run
        # yet while the first ones are running. A Run All sent before the kernel listened is lost: send it
        # again while nothing has run and the kernel is not busy (no restart: that dropped the page's
        # kernel websocket in full runs). An error stops Run All: stop waiting and report it.
        deadline, last_request = time.monotonic() + 420, time.monotonic()
        while True:
            code_cells = save_and_read_code_cells(page, saved_path)
            errors = error_outputs(code_cells)
            if errors or all(c.execution_count for c in code_cells) or time.monotonic() > deadline:
                break
            busy = page.locator("#jp-main-statusbar :text('Busy')").count() > 0
            if not busy and not any(c.execution_count for c in code_cells) and time.monotonic() - last_request > 30:
                run_all(page)
                last_request = time.monotonic()
            time.sleep(5)
        status = kernel_status(page)
        if page.locator(".jp-toast-button", has_text="No").count():
            page.locator(".jp-toast-button", has_text="No").click()  # JupyterLab's news prompt
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)
        browser.close()

    assert len(code_cells) > 5
    assert errors == [], errors[:3]
    not_run = [i for i, c in enumerate(code_cells) if not c.execution_count]
    assert not_run == [], (
        f"{len(not_run)} of {len(code_cells)} code cells of {name} did not run within 420 s (first: code cell "
        f"{not_run[0]}, {code_cells[not_run[0]].source[:80]!r}); kernel {status}; screenshot {SCREENSHOTS / name}.png\n"
        f"--- browser console (last 20) ---\n" + "\n".join(console[-20:]) + "\n"
        f"--- JupyterLab log without saves ---\n{lab_log_without_saves(lab_log)}"
    )
    text = "".join(o.get("text", "") for c in code_cells for o in c.outputs)
    assert "TF 2.21" in text  # the setup cell's one-line environment report


@pytest.mark.slow  # a browser renders the course's diagrams in JupyterLab
def test_every_mermaid_diagram_renders_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright

    lab, _, _ = lab
    expected = len(diagrams_notebook().cells)
    assert expected >= 4, "issue 16 asks for at least four diagrams"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        # Tall enough that JupyterLab's windowed notebook renders every cell.
        page = browser.new_page(viewport={"width": 1400, "height": 6000})
        page.goto(fresh_workspace(lab, "diagrams", DIAGRAMS))
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        deadline = time.monotonic() + 60
        # JupyterLab 4 draws each diagram as an <img> whose source is the SVG Mermaid made.
        drawn = page.locator(".jp-RenderedMermaid img[src^='data:image/svg+xml']")
        while drawn.count() < expected and time.monotonic() < deadline:
            time.sleep(0.5)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "diagrams.png"), full_page=True)
        rendered = drawn.count()
        warnings = page.locator(".jp-RenderedMermaid.jp-mod-warning").all_inner_texts()
        browser.close()
    assert warnings == [], f"Mermaid could not render: {warnings[:1]}"
    assert rendered == expected, f"{rendered} of {expected} diagrams rendered as SVG"
