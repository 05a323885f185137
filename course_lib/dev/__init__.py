"""Tools for the people who build and run the course (authors, CI, instructors), not for students."""
