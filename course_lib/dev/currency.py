"""Currency: run the course on the newest TensorFlow and Keras, release candidates included.

The course pins TensorFlow and Keras (requirements.txt, constraints.txt) and those pins stay as they
are. This tool builds a separate virtual environment with the course's other pins and the newest
`tensorflow`, `keras` and `tf-keras` on the package index (`pip index versions --pre`), runs every
solution notebook and the test suite in it, and writes what broke: report.md for people, report.json
for machines, with the first error of each notebook and the first line of each failing test.

    python -m course_lib.dev.currency --out results/currency-YYYYMMDD [--venv .currency-venv]

How the environment is resolved (each step and its outcome is in the report):
1. the course's requirements and lock, minus the TensorFlow family (TF_FAMILY) and the packages that
   depend on it (TF_DEPENDENTS);
2. the newest tensorflow and keras, with that lock as constraints (dropped, and said so, if they
   conflict). A TensorFlow release candidate depends on `keras-nightly`, which installs into the same
   `keras/` folder as `keras`: it is removed and the newest `keras` release put back, so the run tests
   the Keras that students get;
3. tf-keras follows TensorFlow's minor version: the newest tf-keras for that minor, or, when there is
   none yet, the newest tf-keras without its dependency check (reported: TF Hub's KerasLayer needs it);
4. the TF-dependent packages at the course's pins, without moving TensorFlow (`--no-deps` when their
   metadata forbids the new TensorFlow, reported), then course_lib itself (`--no-deps -e .`);
5. `pip check` and the versions that were installed, as imported by Python.

The notebooks run through course_lib.dev.run_notebooks on a kernel of that environment
(CURRENCY_KERNEL); the course kernel's name is registered there too, so the tests that start it use
the newest TensorFlow. Exit status: 0 when the report was written, whatever broke; 1 when the tool
itself failed. This module uses only the standard library: `make currency` needs no course venv.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

from course_lib.paths import KERNEL_NAME, REPO_ROOT

CURRENCY_KERNEL = f"{KERNEL_NAME}-currency"
DEFAULT_VENV = ".currency-venv"
MAKE_STAMP = ".course-installed"
"""The Makefile's mark of a built environment ($(VENV)/.course-installed)."""
NEWEST = ("tensorflow", "keras", "tf-keras")
TF_FAMILY = frozenset(
    {
        "tensorflow",
        "tensorflow-cpu",
        "tensorflow-intel",
        "tf-nightly",
        "keras",
        "keras-nightly",
        "tf-keras",
        "tensorboard",
        "tensorboard-data-server",
        "tensorboard-plugin-wit",
        "tensorflow-io-gcs-filesystem",
    }
)
"""Pins the currency run drops: it installs the newest of these instead."""
TF_DEPENDENTS = frozenset({"tensorflow-hub", "tensorflow-serving-api"})
"""Course requirements whose metadata names tensorflow or tf-keras: installed after the newest TensorFlow
at the course's pins, never allowed to move it (tests/test_currency.py checks this list is complete)."""
REPORTED = (
    "tensorflow",
    "keras",
    "keras-nightly",
    "tf-keras",
    "tensorflow-hub",
    "tensorflow-serving-api",
    "ai-edge-litert",
    "numpy",
    "protobuf",
    "ml-dtypes",
    "h5py",
    "grpcio",
)
"""Packages whose installed versions the report lists."""
NOTEBOOK_TIMEOUT_S = 3 * 3600
TESTS_TIMEOUT_S = 2 * 3600


# --- requirement files -----------------------------------------------------------------------------


def canonical(name: str) -> str:
    """PEP 503 name: `tf_keras`, `TF.Keras` and `tf-keras` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str | None:
    """The package a requirements/constraints line names, or None for comments, blanks and options."""
    text = line.split("#", 1)[0].strip()
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", text)
    return canonical(match.group(0)) if match and not text.startswith("-") else None


def filter_requirements(text: str, drop: frozenset[str] | set[str]) -> tuple[list[str], list[str]]:
    """(lines to keep, names dropped): the requirement lines of `text` without the packages in `drop`.

    Comments and blank lines go; a kept line keeps its specifier and markers but not its comment.
    """
    kept, dropped = [], []
    for line in text.splitlines():
        name = requirement_name(line)
        if name is None:
            continue
        if name in drop:
            dropped.append(name)
        else:
            kept.append(line.split("#", 1)[0].strip())
    return kept, dropped


def pinned_version(text: str, name: str) -> str | None:
    """The `==` version that requirements text pins for a package, or None."""
    for line in text.splitlines():
        if requirement_name(line) == canonical(name):
            match = re.search(r"==\s*([^\s;#]+)", line)
            return match.group(1) if match else None
    return None


# --- the package index ---------------------------------------------------------------------------


def parse_index_versions(output: str) -> list[str]:
    """Versions from `pip index versions NAME --pre`, newest first (as pip prints them)."""
    for line in output.splitlines():
        if line.startswith("Available versions:"):
            return [v.strip() for v in line.split(":", 1)[1].split(",") if v.strip()]
    match = re.search(r"^\S+ \(([^)]+)\)$", output, re.MULTILINE)
    return [match.group(1)] if match else []


def minor_of(version: str) -> tuple[int, int]:
    """(2, 22) for 2.22.0rc0."""
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None:
        raise ValueError(f"{version!r} is not a version number (expected MAJOR.MINOR...)")
    return int(match.group(1)), int(match.group(2))


def pick_tf_keras(versions: list[str], tensorflow: str) -> tuple[str, bool]:
    """(tf-keras version, whether it matches TensorFlow's minor): tf-keras X.Y goes with TensorFlow X.Y.

    The newest tf-keras for TensorFlow's minor version when there is one, else the newest tf-keras
    overall (its metadata will refuse the new TensorFlow: the caller installs it without that check).
    """
    if not versions:
        raise ValueError("the package index lists no tf-keras versions")
    matching = [v for v in versions if minor_of(v) == minor_of(tensorflow)]
    return (matching[0], True) if matching else (versions[0], False)


# --- results -------------------------------------------------------------------------------------


def first_line(text: str) -> str:
    """The first non-blank line, without ANSI colour codes (tracebacks in notebooks carry them)."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text or "")
    return next((line.strip() for line in plain.splitlines() if line.strip()), "")


PAPERMILL_TAGS = frozenset({"papermill-error-cell-tag", "injected-parameters"})
"""Cells papermill adds to an executed notebook (the error banner and anchor, the injected parameters)."""


def first_error(notebook: dict) -> dict | None:
    """{cell, execution_count, ename, evalue, source} of the first code cell with an error output, or None.

    `cell` is the index in the source notebook (solutions/): the cells papermill added are not counted.
    """
    cells = [c for c in notebook.get("cells", []) if not PAPERMILL_TAGS & set(c.get("metadata", {}).get("tags", []))]
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return {
                    "cell": index,
                    "execution_count": cell.get("execution_count"),
                    "ename": output.get("ename", ""),
                    "evalue": first_line(output.get("evalue", "")),
                    "source": first_line(
                        cell.get("source", "")
                        if isinstance(cell.get("source"), str)
                        else "".join(cell.get("source", []))
                    ),
                }
    return None


def notebook_results(summary: dict) -> list[dict]:
    """One entry per notebook from run_notebooks' summary.json: ok, seconds and the first error.

    The first error is read from the executed notebook (cell, exception name, first line of its message);
    a notebook that stopped without an error output (a dead kernel, a timeout) gets the runner's last line.
    """
    results = []
    for run in summary.get("runs", []):
        entry = {"notebook": run["assignment"], "ok": bool(run["ok"]), "seconds": run.get("seconds"), "error": None}
        if not run["ok"]:
            output = Path(run.get("output", ""))
            error = first_error(json.loads(output.read_text())) if output.is_file() else None
            if error is None:
                lines = [line for line in (run.get("error") or "").splitlines() if line.strip()]
                error = {
                    "cell": None,
                    "execution_count": None,
                    "ename": "",
                    "source": "",
                    "evalue": lines[-1].strip() if lines else "failed without an error message",
                }
            entry["error"] = error
        results.append(entry)
    return results


_SUMMARY_LINE = re.compile(
    r"^=+ (.*\b(?:passed|failed|error|errors|skipped|deselected|no tests ran)\b.*) in "
    r"[\d.]+s.* =+$"
)


_SINGULAR = {"errors": "error", "warnings": "warning"}


def parse_pytest_output(output: str) -> dict:
    """Counts, and the failing tests with the first line of their message, from pytest's text output.

    Reads the `short test summary info` lines (`FAILED nodeid - message`, `ERROR nodeid - message`;
    `-ra`, which pyproject.toml sets, prints them) and the final `= 3 failed, 120 passed in 9.1s =` line.
    """
    counts: dict[str, int] = {}
    failures = []
    for raw in output.splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", raw).rstrip()
        match = re.match(r"^(FAILED|ERROR) (\S+)(?: - (.*))?$", line)
        if match:
            failures.append(
                {"outcome": match.group(1).lower(), "nodeid": match.group(2), "message": (match.group(3) or "").strip()}
            )
            continue
        summary = _SUMMARY_LINE.match(line)
        if summary:
            counts = {}
            for number, word in re.findall(r"(\d+) (\w+)", summary.group(1)):
                key: str = _SINGULAR.get(str(word), str(word))
                counts[key] = counts.get(key, 0) + int(number)
    return {"counts": counts, "failures": failures}


# --- the report ----------------------------------------------------------------------------------


def render_report(report: dict) -> str:
    """report.md: versions, how they were installed, each notebook's result, the suite's failures."""
    lines = [f"# Currency: the course on the newest TensorFlow and Keras ({report['date']})", ""]
    if report.get("commit"):
        lines += [f"Course at commit {report['commit']}, Python {report.get('python', '?')}.", ""]
    versions = report.get("versions", {})
    imported = report.get("imported", {})
    lines += ["| package | course pin | newest on the index | installed |", "|---|---|---|---|"]
    for name in NEWEST:
        lines.append(
            f"| {name} | {report.get('pins', {}).get(name) or '-'} | "
            f"{report.get('newest', {}).get(name) or '-'} | {versions.get(name) or '-'} |"
        )
    others = [f"{name} {versions[name]}" for name in REPORTED if name not in NEWEST and versions.get(name)]
    if others:
        lines += ["", "Also installed: " + ", ".join(others) + "."]
    if imported:
        lines += ["", "Imported in the environment: " + ", ".join(f"{k} {v}" for k, v in imported.items()) + "."]
    if report.get("notes"):
        lines += ["", "## How the environment was resolved", ""] + [f"- {note}" for note in report["notes"]]
    if report.get("pip_check"):
        lines += ["", "`pip check`:", "", "```", *report["pip_check"], "```"]

    notebooks = report.get("notebooks")
    lines += ["", "## Notebooks", ""]
    if notebooks is None:
        lines.append("Not run: " + (report.get("notebooks_skipped") or "the environment could not be built."))
    else:
        broken = [n for n in notebooks if not n["ok"]]
        lines += [
            f"{len(notebooks) - len(broken)} of {len(notebooks)} notebooks ran to the end.",
            "",
            "| notebook | result | seconds | first error |",
            "|---|---|---:|---|",
        ]
        for nb in notebooks:
            error = nb.get("error")
            where = f"cell {error['cell']}: " if error and error.get("cell") is not None else ""
            text = (
                f"{where}`{error['ename']}`: {error['evalue']}"
                if error and error.get("ename")
                else (f"{where}{error['evalue']}" if error else "")
            )
            lines.append(
                f"| {nb['notebook']} | {'ok' if nb['ok'] else 'FAILED'} | "
                f"{nb['seconds'] if nb.get('seconds') is not None else '-'} | {_cell(text)} |"
            )

    tests = report.get("tests")
    lines += ["", "## Test suite", ""]
    if tests is None:
        lines.append("Not run: " + (report.get("tests_skipped") or "the environment could not be built."))
    else:
        counts = ", ".join(f"{n} {word}" for word, n in tests["counts"].items()) or "no summary line (see log)"
        lines.append(f"`{tests['command']}`: {counts} (exit status {tests['returncode']}, {tests['seconds']:.0f} s).")
        if tests["failures"]:
            lines += ["", "| test | outcome | first line |", "|---|---|---|"]
            lines += [f"| `{f['nodeid']}` | {f['outcome']} | {_cell(f['message'])} |" for f in tests["failures"]]
    timings = report.get("seconds", {})
    if timings:
        lines += ["", "Time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + "."]
    return "\n".join(lines) + "\n"


def _cell(text: str, limit: int = 240) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def write_report(report: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(render_report(report))
    return json_path, md_path


# --- building the environment ----------------------------------------------------------------------


class Environment:
    """The currency venv, and a log of every command run in it (log.txt in the output folder)."""

    def __init__(self, path: Path, log_path: Path):
        self.path, self.log_path = path, log_path
        self.python = path / "bin" / "python"
        self.tail = 6000

    def run(
        self, args: list[str], timeout: float = 3600, env: dict | None = None, cwd: Path = REPO_ROOT
    ) -> subprocess.CompletedProcess:
        start = time.perf_counter()
        result = subprocess.run(
            args,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, **(env or {})},
        )
        with self.log_path.open("a") as log:
            log.write(f"\n$ {' '.join(args)}\n[exit {result.returncode}, {time.perf_counter() - start:.0f} s]\n")
            log.write(result.stdout[-self.tail :] + result.stderr[-self.tail :])
        return result

    def pip(self, *args: str, timeout: float = 3600) -> subprocess.CompletedProcess:
        return self.run([str(self.python), "-m", "pip", *args], timeout=timeout)


def pip_conflict(output: str) -> str:
    """Why a pip install failed, in one line for the report: the resolver's `X depends on Y` and
    `The user requested` lines when it names a conflict, else its first ERROR line."""
    lines = [line.strip() for line in output.splitlines()]
    reasons = [line for line in lines if " depends on " in line or line.startswith("The user requested")]
    reasons = reasons or [line for line in lines if line.startswith("ERROR:")]
    return "; ".join(dict.fromkeys(reasons)) or first_line(output[-2000:]) or "no message"


def newest_versions(env: Environment) -> dict[str, list[str]]:
    """Every version of tensorflow, keras and tf-keras the index offers, newest first, pre-releases included."""
    versions = {}
    for name in NEWEST:
        result = env.pip("index", "versions", name, "--pre", timeout=600)
        versions[name] = parse_index_versions(result.stdout)
        if not versions[name]:
            raise RuntimeError(f"`pip index versions {name} --pre` listed nothing: {first_line(result.stderr)}")
    return versions


def build_environment(env: Environment, report: dict, work: Path) -> None:
    """Steps 1-5 of the module docstring; raises RuntimeError when the course itself cannot be installed."""
    requirements = (REPO_ROOT / "requirements.txt").read_text()
    constraints = (REPO_ROOT / "constraints.txt").read_text()
    held_back = TF_FAMILY | TF_DEPENDENTS
    kept_req, dropped_req = filter_requirements(requirements, held_back)
    kept_con, _ = filter_requirements(constraints, held_back)
    req_file, con_file = work / "requirements-currency.txt", work / "constraints-currency.txt"
    req_file.write_text("\n".join(kept_req) + "\n")
    con_file.write_text("\n".join(kept_con) + "\n")
    report["pins"] = {name: pinned_version(requirements, name) or pinned_version(constraints, name) for name in NEWEST}
    notes = report["notes"]
    notes.append(f"Course pins held back: {', '.join(sorted(set(dropped_req)))} (and the same in constraints.txt).")

    if env.path.exists():
        shutil.rmtree(env.path)
    venv.EnvBuilder(with_pip=True, clear=True).create(env.path)
    env.pip("install", "--quiet", "--upgrade", "pip")
    result = env.pip("install", "-r", str(req_file), "-c", str(con_file))
    if result.returncode:
        raise RuntimeError(f"the course's own pins do not install: {pip_conflict(result.stdout + result.stderr)}")

    available = newest_versions(env)
    tensorflow, keras = available["tensorflow"][0], available["keras"][0]
    tf_keras, tf_keras_matches = pick_tf_keras(available["tf-keras"], tensorflow)
    report["newest"] = {"tensorflow": tensorflow, "keras": keras, "tf-keras": available["tf-keras"][0]}

    targets = [f"tensorflow=={tensorflow}", f"keras=={keras}"]
    result = env.pip("install", "--pre", *targets, "-c", str(con_file))
    if result.returncode:
        notes.append(
            f"tensorflow {tensorflow} and keras {keras} conflict with the course's lock "
            f"({pip_conflict(result.stdout + result.stderr)}); installed without the lock."
        )
        result = env.pip("install", "--pre", *targets)
        if result.returncode:
            raise RuntimeError(
                f"tensorflow {tensorflow} with keras {keras} does not install: "
                f"{pip_conflict(result.stdout + result.stderr)}"
            )
    pinned = work / "constraints-newest.txt"
    pinned.write_text(con_file.read_text() + f"tensorflow=={tensorflow}\nkeras=={keras}\ntf-keras=={tf_keras}\n")
    if not tf_keras_matches:
        notes.append(
            f"No tf-keras for tensorflow {'.'.join(map(str, minor_of(tensorflow)))} on the index yet; "
            f"the newest, tf-keras {tf_keras}, was tried."
        )
    dependents = [f"tf-keras=={tf_keras}"] + [
        f"{name}=={pinned_version(requirements, name)}" if pinned_version(requirements, name) else name
        for name in sorted(TF_DEPENDENTS)
    ]
    for requirement in dependents:
        result = env.pip("install", "--pre", requirement, "-c", str(pinned))
        if result.returncode:
            env.pip("install", "--no-deps", requirement)
            why = pip_conflict(result.stdout + result.stderr)
            notes.append(f"{requirement} refuses tensorflow {tensorflow} ({why}); installed with --no-deps.")

    # Last of the installs: any install that checks tensorflow's dependencies brings keras-nightly back.
    installed = installed_versions(env)
    if "keras-nightly" in installed:
        env.pip("uninstall", "--yes", "keras-nightly")
        env.pip("install", "--no-deps", "--force-reinstall", f"keras=={keras}")
        notes.append(
            f"tensorflow {tensorflow} requires keras-nightly (release candidates do); it shares the "
            f"`keras/` folder with keras, so keras-nightly {installed['keras-nightly']} was removed "
            f"and keras {keras} reinstalled: the run tests the Keras release students get."
        )

    result = env.pip("install", "--quiet", "--no-deps", "--no-build-isolation", "-e", str(REPO_ROOT))
    if result.returncode:
        raise RuntimeError(f"course_lib does not install: {first_line(result.stderr)}")
    for name, display in (
        (CURRENCY_KERNEL, "Python 3 (TF course, newest TensorFlow)"),
        (KERNEL_NAME, "Python 3 (TF course)"),
    ):
        result = env.run(
            [str(env.python), "-m", "ipykernel", "install", "--sys-prefix", "--name", name, "--display-name", display]
        )
        if result.returncode:
            raise RuntimeError(f"kernel {name} could not be registered: {first_line(result.stderr)}")
    env.run([str(env.python), "-m", "course_lib.dev.kernel_limits", "install"])
    # The tests that run `make` get this environment (VENV=, see run_tests), marked as built: make must not
    # reinstall the course's pins into it.
    (env.path / MAKE_STAMP).touch()

    report["versions"] = {name: version for name, version in installed_versions(env).items() if name in REPORTED}
    check = env.pip("check")
    report["pip_check"] = [line for line in check.stdout.splitlines() if line.strip()] if check.returncode else []
    probe = env.run(
        [
            str(env.python),
            "-c",
            (
                "import json, tensorflow as tf, keras; print(json.dumps("
                "{'tensorflow': tf.__version__, 'keras': keras.__version__}))"
            ),
        ],
        env={"TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=600,
    )
    try:
        report["imported"] = json.loads(probe.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        last = [line for line in probe.stderr.splitlines() if line.strip()][-1:] or ["no message"]
        report["imported"] = {"tensorflow": f"does not import ({last[0].strip()})"}


def course_commit(root: Path = REPO_ROOT) -> str:
    """The commit the run tested, with a warning when the working tree differs from it."""

    def git(*args: str) -> str:
        try:
            result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
        except OSError:  # no git, or no such folder
            return ""
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown (not a git checkout)"
    return commit + (" with uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def installed_versions(env: Environment) -> dict[str, str]:
    result = env.pip("list", "--format", "json")
    return {canonical(p["name"]): p["version"] for p in json.loads(result.stdout or "[]")}


# --- running the course --------------------------------------------------------------------------


def run_notebooks(env: Environment, out_dir: Path, report: dict) -> None:
    executed = out_dir / "notebooks"
    env.run(
        [str(env.python), "-m", "course_lib.dev.run_notebooks", "--kernel", CURRENCY_KERNEL, "--out", str(executed)],
        timeout=NOTEBOOK_TIMEOUT_S,
    )
    summary = executed / "summary.json"
    if not summary.is_file():
        report["notebooks_skipped"] = "the notebook runner wrote no summary (see log.txt)."
        return
    report["notebooks"] = notebook_results(json.loads(summary.read_text()))


def run_tests(env: Environment, report: dict, pytest_args: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="currency-tests-") as basetemp:
        args = [str(env.python), "-m", "pytest", "-p", "no:cacheprovider", "--basetemp", basetemp, *pytest_args]
        start = time.perf_counter()
        result = env.run(
            args, timeout=TESTS_TIMEOUT_S, env={"COLUMNS": "400", "COURSE_ROOT": str(REPO_ROOT), "VENV": str(env.path)}
        )
        parsed = parse_pytest_output(result.stdout)
    display = ["pytest", *pytest_args]
    report["tests"] = {
        "command": " ".join(f'"{a}"' if " " in a else a for a in display),
        "returncode": result.returncode,
        "seconds": round(time.perf_counter() - start, 1),
        **parsed,
    }


def default_pytest_args() -> list[str]:
    """The suite minus the tests marked slow, when that marker exists; two workers either way."""
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    marker = ["-m", "not slow"] if re.search(r'^\s*"slow:', pyproject, re.MULTILINE) else []
    return ["-n", "2", "--dist", "loadscope", *marker, "tests"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.dev.currency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    today = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results" / f"currency-{today}")
    parser.add_argument(
        "--venv",
        type=Path,
        default=REPO_ROOT / DEFAULT_VENV,
        help=f"where to build the environment (default {DEFAULT_VENV}; rebuilt on every run)",
    )
    parser.add_argument("--skip-notebooks", action="store_true")
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument(
        "--pytest-args", default=None, help="instead of the default: " + " ".join(default_pytest_args())
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    env = Environment(args.venv.resolve(), args.out / "log.txt")
    env.log_path.write_text(f"currency run {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}\n")
    report: dict = {
        "date": dt.date.today().isoformat(),
        "commit": course_commit(),
        "python": sys.version.split()[0],
        "notes": [],
        "seconds": {},
    }
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="currency-") as work:
            build_environment(env, report, Path(work))
        report["seconds"]["environment"] = round(time.perf_counter() - started, 1)
        if args.skip_notebooks:
            report["notebooks_skipped"] = "--skip-notebooks"
        else:
            phase = time.perf_counter()
            run_notebooks(env, args.out, report)
            report["seconds"]["notebooks"] = round(time.perf_counter() - phase, 1)
        if args.skip_tests:
            report["tests_skipped"] = "--skip-tests"
        else:
            pytest_args = shlex.split(args.pytest_args) if args.pytest_args else default_pytest_args()
            run_tests(env, report, pytest_args)
            report["seconds"]["tests"] = report["tests"]["seconds"]
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        report["failed"] = f"{type(exc).__name__}: {exc}"
        report["notes"].append(f"The run stopped: {report['failed']}")
        write_report(report, args.out)
        print(f"currency run failed: {report['failed']} (log: {env.log_path})", file=sys.stderr)
        return 1
    report["seconds"]["total"] = round(time.perf_counter() - started, 1)
    _, md_path = write_report(report, args.out)
    print(md_path.read_text())
    print(f"report: {md_path} (log: {env.log_path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
