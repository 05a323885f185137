"""JupyterHub for the course's class: `make hub` (or `python -m course_lib.hub start`) runs it.

Every setting, and why, is in course_lib/hub/settings.py; COURSE_HUB_* variables choose the roster,
ports and state folder (docs/hub.md).
"""

from course_lib.hub.settings import HubSettings, configure

configure(get_config(), HubSettings.from_environment())  # noqa: F821  # pyright: ignore[reportUndefinedVariable]
