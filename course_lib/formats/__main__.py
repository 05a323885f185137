"""`python -m course_lib.formats`: see course_lib.formats.cli."""

from course_lib.formats.cli import main

raise SystemExit(main())
