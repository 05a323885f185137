"""Hints in stages, the way learntools gives them: concept, then API, then a worked example on other data.

A notebook defines its ladders in one plain code cell (so the student version has them, and never a
solution):

    from course_lib.hints import Hints
    hints = Hints("08-troubleshooting", {"ex1": ["the idea ...", "the API ...", "an example ..."], ...})

and the student asks in the notebook: `hints.hint("ex1")` shows the next hint of exercise 1 that they
have not seen, `hints.hint("ex1", 2)` the second (or, asked before the first, the first: a ladder is
climbed one step at a time), `hints.asked()` what they have asked so far. Which levels were asked is
kept in `.hints-<notebook>.json` in the kernel's working directory: the student's folder work/<id>/
when the notebook runs in JupyterLab, where `python -m course_lib progress` reads it. A folder that
cannot be written never stops the notebook: the record then stays in memory, and the message says so.
"""

from __future__ import annotations

import inspect
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from course_lib.errors import CourseError

LEVEL_NAMES = {1: "the idea", 2: "the API", 3: "a worked example on other data"}


class HintError(CourseError):
    """An exercise or a level that the notebook has no hint for: the message lists those it has."""


def record_path(folder: str | os.PathLike[str], notebook: str) -> Path:
    """Where the hints asked in `notebook` are recorded, in the folder the notebook runs in."""
    return Path(folder) / f".hints-{notebook}.json"


def read_record(path: str | os.PathLike[str]) -> dict[str, list[int]]:
    """The levels asked per exercise in a record file; {} when there is none or it cannot be read."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        asked = data["asked"]
        return {str(ex): sorted({int(level) for level in levels}) for ex, levels in asked.items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def _show(text: str) -> None:
    """Markdown in a notebook (IPython running), plain text anywhere else."""
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        print(text)
        return
    if get_ipython() is None:
        print(text)
    else:
        display(Markdown(text))


class Hints:
    """The hint ladders of one notebook, and the record of which levels the student asked for."""

    def __init__(
        self,
        notebook: str,
        ladders: Mapping[str, Sequence[str]],
        folder: str | os.PathLike[str] | None = None,
    ) -> None:
        if not ladders:
            raise HintError(f"{notebook}: give at least one exercise with its hints")
        for exercise, ladder in ladders.items():
            if isinstance(ladder, str) or not ladder or not all(isinstance(t, str) and t.strip() for t in ladder):
                raise HintError(f"{notebook}, {exercise}: the hints must be a list of non-empty strings, one per level")
        self.notebook = notebook
        # Texts may be indented triple-quoted strings: cleandoc strips the indentation and the blank first line.
        self.ladders = {exercise: [inspect.cleandoc(text) for text in ladder] for exercise, ladder in ladders.items()}
        self.path = record_path(Path.cwd() if folder is None else folder, notebook)
        self.saved = True  # False once the record could not be written: it is then kept in memory only
        self._error = ""
        recorded = read_record(self.path)
        self._asked: dict[str, list[int]] = {
            ex: [level for level in levels if 1 <= level <= len(self.ladders[ex])]
            for ex, levels in recorded.items()
            if ex in self.ladders
        }

    def levels_asked(self) -> dict[str, list[int]]:
        """The levels asked so far per exercise (exercises with none are left out)."""
        return {ex: list(levels) for ex, levels in self._asked.items() if levels}

    def hint(self, exercise: str, level: int | None = None) -> None:
        """Show a hint for `exercise`: the next one not seen yet, or `level` once the ones before it were seen."""
        ladder = self._ladder(exercise)
        seen = self._asked.get(exercise, [])
        highest = max(seen, default=0)
        if level is None:
            level = min(highest + 1, len(ladder))
        elif isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= len(ladder):
            raise HintError(
                f"{exercise} has hints 1 to {len(ladder)} in {self.notebook}, not {level!r}: "
                f'`hints.hint("{exercise}")` shows the next one'
            )
        note = ""
        if level > highest + 1:
            note = (
                f"\n\n*Hint {level} comes after hint {highest + 1}: here is hint {highest + 1} first. "
                f'Ask again (`hints.hint("{exercise}", {highest + 2})`) for the next one.*'
            )
            level = highest + 1
        self._record(exercise, level)
        title = f"**Hint {level} of {len(ladder)} for {exercise}** ({LEVEL_NAMES.get(level, 'one more step')})"
        more = f'\n\n*Still stuck? `hints.hint("{exercise}", {level + 1})`*' if level < len(ladder) and not note else ""
        _show(f"{title}\n\n{ladder[level - 1]}{note}{more}{self._unsaved_note()}")

    def asked(self) -> None:
        """Show which hints were asked for, per exercise."""
        lines = [f"**Hints asked in {self.notebook}**", "", "| exercise | hints asked |", "|---|---|"]
        for exercise, ladder in self.ladders.items():
            levels = self._asked.get(exercise, [])
            shown = ", ".join(map(str, levels)) + f" of {len(ladder)}" if levels else "none"
            lines.append(f"| {exercise} | {shown} |")
        _show("\n".join(lines) + self._unsaved_note())

    def _ladder(self, exercise: str) -> list[str]:
        if exercise not in self.ladders:
            known = ", ".join(f'"{ex}"' for ex in self.ladders)
            raise HintError(f"no hints for {exercise!r} in {self.notebook}: the exercises with hints are {known}")
        return self.ladders[exercise]

    def _record(self, exercise: str, level: int) -> None:
        levels = self._asked.setdefault(exercise, [])
        if level not in levels:
            levels.append(level)
            levels.sort()
        if self.saved:
            try:
                self._write()
            except OSError as error:
                self.saved = False
                self._error = f"{type(error).__name__}: {error.strerror or error}"

    def _write(self) -> None:
        """Replace the record file in one step, so a reader never sees half a file."""
        data = {"notebook": self.notebook, "asked": self.levels_asked()}
        fd, temporary = tempfile.mkstemp(prefix=self.path.name, suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(data, file, indent=1, sort_keys=True)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _unsaved_note(self) -> str:
        if self.saved:
            return ""
        return (
            f"\n\n*(Could not save which hints you asked in {self.path} ({self._error}): "
            "they are kept in memory until the kernel restarts.)*"
        )
