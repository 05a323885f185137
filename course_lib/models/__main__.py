"""`python -m course_lib.models` is `python -m course_lib prefetch`: see course_lib.models.prefetch."""

from course_lib.models.prefetch import prefetch_main

raise SystemExit(prefetch_main())
