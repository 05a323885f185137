"""The course's JupyterHub for a class on one machine: roster, Unix accounts, spawner, exchange.

Instructor tooling like course_lib.dev (it may import anything); students' code never imports it.
`python -m course_lib.hub` is its command line; deploy/hub/jupyterhub_config.py loads `settings`.
"""
