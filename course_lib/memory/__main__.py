"""`python -m course_lib.memory`: see course_lib.memory.cli."""

from course_lib.memory.cli import main

raise SystemExit(main())
