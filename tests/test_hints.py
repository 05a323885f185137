"""course_lib.hints: ladders climbed one step at a time, clear errors, and a record that never breaks a notebook."""

import json
import os

import pytest

from course_lib.hints import HintError, Hints, read_record, record_path

LADDERS = {"ex1": ["the idea of one", "the API of one", "an example for one"], "ex2": ["only hint of two"]}


@pytest.fixture
def hints(tmp_path):
    return Hints("99-demo", LADDERS, folder=tmp_path)


def test_hint_shows_the_level_asked_for_as_text_outside_ipython(hints, capsys):
    hints.hint("ex1", 1)
    out = capsys.readouterr().out
    assert "Hint 1 of 3 for ex1" in out and "the idea of one" in out
    assert 'hints.hint("ex1", 2)' in out, "the hint says how to ask for the next one"
    hints.hint("ex1", level=2)
    assert "the API of one" in capsys.readouterr().out


def test_hint_without_a_level_shows_the_next_one_not_seen(hints, capsys):
    texts = []
    for _ in range(4):
        hints.hint("ex1")
        texts.append(capsys.readouterr().out)
    assert ["idea" in texts[0], "API" in texts[1], "example" in texts[2], "example" in texts[3]] == [True] * 4


def test_asking_ahead_shows_the_next_step_first_and_says_so(hints, capsys):
    hints.hint("ex1", 3)
    out = capsys.readouterr().out
    assert "the idea of one" in out and "an example for one" not in out
    assert "Hint 3 comes after hint 1" in out
    assert hints.levels_asked() == {"ex1": [1]}
    hints.hint("ex1", 2)
    hints.hint("ex1", 3)
    assert "an example for one" in capsys.readouterr().out
    assert hints.levels_asked() == {"ex1": [1, 2, 3]}


def test_an_unknown_exercise_names_those_that_exist(hints):
    with pytest.raises(
        HintError, match=r"no hints for 'ex9' in 99-demo: the exercises with hints are \"ex1\", \"ex2\""
    ):
        hints.hint("ex9")


@pytest.mark.parametrize("level", [0, 4, -1, "2", 1.5, True])
def test_an_unknown_level_names_the_levels_that_exist(hints, level):
    with pytest.raises(HintError, match="ex1 has hints 1 to 3 in 99-demo"):
        hints.hint("ex1", level)


def test_errors_are_value_errors_and_record_nothing(hints, tmp_path):
    with pytest.raises(ValueError):
        hints.hint("ex2", 2)
    assert hints.levels_asked() == {}
    assert not record_path(tmp_path, "99-demo").exists(), "defining or misusing hints writes no file"


@pytest.mark.parametrize("ladders", [{}, {"ex1": []}, {"ex1": "a string, not a list"}, {"ex1": ["ok", " "]}])
def test_malformed_ladders_are_refused_when_defined(tmp_path, ladders):
    with pytest.raises(HintError):
        Hints("99-demo", ladders, folder=tmp_path)


def test_the_record_file_holds_the_levels_asked_and_survives_a_restart(hints, tmp_path, capsys):
    hints.hint("ex1")
    hints.hint("ex1")
    hints.hint("ex2")
    path = tmp_path / ".hints-99-demo.json"
    assert json.loads(path.read_text()) == {"notebook": "99-demo", "asked": {"ex1": [1, 2], "ex2": [1]}}
    assert read_record(path) == {"ex1": [1, 2], "ex2": [1]}
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temporary file is left behind"
    restarted = Hints("99-demo", LADDERS, folder=tmp_path)
    assert restarted.levels_asked() == {"ex1": [1, 2], "ex2": [1]}
    capsys.readouterr()
    restarted.hint("ex1")
    assert "an example for one" in capsys.readouterr().out


def test_the_record_defaults_to_the_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Hints("99-demo", LADDERS).hint("ex2")
    assert read_record(tmp_path / ".hints-99-demo.json") == {"ex2": [1]}


def test_a_broken_or_foreign_record_is_ignored(tmp_path):
    path = record_path(tmp_path, "99-demo")
    path.write_text("{ not json")
    assert Hints("99-demo", LADDERS, folder=tmp_path).levels_asked() == {}
    path.write_text(json.dumps({"asked": {"ex1": [1, 7], "gone": [1]}}))
    assert Hints("99-demo", LADDERS, folder=tmp_path).levels_asked() == {"ex1": [1]}
    assert read_record(tmp_path / "missing.json") == {}


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_keeps_the_record_in_memory_and_says_so(tmp_path, capsys):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        hints = Hints("99-demo", LADDERS, folder=folder)
        hints.hint("ex1")
        out = capsys.readouterr().out
        assert "the idea of one" in out
        assert "Could not save which hints you asked" in out and "kept in memory" in out
        hints.hint("ex1")
        assert hints.levels_asked() == {"ex1": [1, 2]}
        assert list(folder.iterdir()) == []
        hints.asked()
        assert "| ex1 | 1, 2 of 3 |" in capsys.readouterr().out
    finally:
        folder.chmod(0o755)


def test_a_folder_that_refuses_writes_keeps_the_record_in_memory(tmp_path, monkeypatch, capsys):
    """The read-only case for any user (root writes into a chmod 555 folder): the write itself fails."""

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("course_lib.hints.tempfile.mkstemp", refuse)
    hints = Hints("99-demo", LADDERS, folder=tmp_path)
    hints.hint("ex1")
    hints.hint("ex1")
    out = capsys.readouterr().out
    assert "the idea of one" in out and "the API of one" in out
    assert "PermissionError: Permission denied" in out and "kept in memory until the kernel restarts" in out
    assert hints.levels_asked() == {"ex1": [1, 2]} and list(tmp_path.iterdir()) == []


def test_a_missing_folder_keeps_the_record_in_memory(tmp_path, capsys):
    hints = Hints("99-demo", LADDERS, folder=tmp_path / "gone")
    hints.hint("ex2")
    assert "kept in memory" in capsys.readouterr().out
    assert hints.levels_asked() == {"ex2": [1]}


def test_asked_lists_every_exercise(hints, capsys):
    hints.hint("ex1")
    capsys.readouterr()
    hints.asked()
    out = capsys.readouterr().out
    assert "| ex1 | 1 of 3 |" in out and "| ex2 | none |" in out


def test_in_ipython_the_hint_is_markdown(hints, monkeypatch):
    pytest.importorskip("IPython")
    import IPython
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(IPython.display, "display", shown.append)
    hints.hint("ex2")
    (markdown,) = shown
    assert isinstance(markdown, IPython.display.Markdown) and "only hint of two" in str(markdown.data)


def test_indented_triple_quoted_texts_are_shown_without_their_indentation(tmp_path, capsys):
    text = """
        A first line.

        ```python
        if x:
            y()
        ```
        """
    Hints("99-demo", {"ex1": [text]}, folder=tmp_path).hint("ex1")
    assert "\n\nA first line.\n\n```python\nif x:\n    y()\n```" in capsys.readouterr().out
