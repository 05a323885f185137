"""Small models and helpers shared by the tests of course_lib.serving."""
