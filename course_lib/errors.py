"""One base class for the errors the course raises on bad input.

Every message says what was wrong and what to do, so students and servers never have to read a
traceback from deep inside TensorFlow. Subclassing ValueError keeps `except ValueError` working.
"""


class CourseError(ValueError):
    """Bad input to a course helper: the message says what was expected and how to fix it."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type's name if it has none), to quote in a CourseError."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
