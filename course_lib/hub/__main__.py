"""`python -m course_lib.hub`: the class hub's command line (docs/hub.md).

accounts          Unix accounts for the roster (and the grader); prints new passwords once
remove-accounts   delete the accounts this tool created (homes included)
start             accounts, folders, then JupyterHub in the foreground (what `make hub` runs)
classroom ARGS    course_lib.dev.classroom as the grader account, on the hub's course directory
load-test         N students log in, spawn, run a cell and submit; the numbers as JSON
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from course_lib.errors import CourseError
from course_lib.hub.settings import HubSettings

DESCRIPTION = "The class hub's command line (docs/hub.md)."


def _settings(args: argparse.Namespace) -> HubSettings:
    settings = HubSettings.from_environment()
    if args.roster:
        settings.roster = args.roster.resolve()
    if args.state:
        settings.state = args.state.resolve()
    if getattr(args, "port", None):
        settings.port = args.port
    return settings


def _print_passwords(created: dict[str, str]) -> None:
    if created:
        print("New accounts and their passwords (shown once; hand them out, or set your own with --passwords):")
        for name, password in created.items():
            print(f"  {name}: {password}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.hub", description=DESCRIPTION)
    parser.add_argument("--roster", type=Path, help="the roster CSV (username,role); default: the example roster")
    parser.add_argument("--state", type=Path, help="the hub's state folder; default deploy/hub/state")
    commands = parser.add_subparsers(dest="command", required=True)
    accounts = commands.add_parser("accounts", help="create the roster's Unix accounts")
    accounts.add_argument("--passwords", type=Path, help="username:password lines (default: random, printed)")
    commands.add_parser("remove-accounts", help="delete the accounts this tool created")
    setup = commands.add_parser("setup", help="accounts and folders, without starting the hub")
    setup.add_argument("--passwords", type=Path, help="username:password lines for new accounts")
    start = commands.add_parser("start", help="prepare and run the hub in the foreground")
    start.add_argument("--port", type=int, help="the port users open on 127.0.0.1 (default 8000)")
    start.add_argument("--passwords", type=Path, help="username:password lines for new accounts")
    start.add_argument("--config", type=Path, help="JupyterHub config file (e.g. deploy/hub/lti13_config.py)")
    classroom = commands.add_parser("classroom", help="course_lib.dev.classroom as the grader account")
    classroom.add_argument("grader_args", nargs=argparse.REMAINDER)
    nbgrader = commands.add_parser("nbgrader", help="nbgrader as the grader account (release, collect, ...)")
    nbgrader.add_argument("grader_args", nargs=argparse.REMAINDER)
    load = commands.add_parser("load-test", help="N students at once against a fresh hub")
    load.add_argument("--students", type=int, default=30)
    load.add_argument("--out", type=Path, help="write the measurements here as JSON")
    load.add_argument("--time-limit", type=float, default=600, help="seconds for the whole run")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except CourseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from course_lib.hub import accounts, launch

    settings = _settings(args)
    if args.command == "accounts":
        from course_lib.hub.roster import read_roster

        passwords = accounts.read_passwords(args.passwords) if args.passwords else None
        names = [*read_roster(settings.roster).usernames, settings.grader]
        _print_passwords(accounts.ensure_accounts(names, settings.accounts_record, passwords))
    elif args.command == "remove-accounts":
        launch.tear_down(settings)
    elif args.command == "setup":
        passwords = accounts.read_passwords(args.passwords) if args.passwords else None
        _print_passwords(launch.prepare(settings, passwords))
    elif args.command == "start":
        passwords = accounts.read_passwords(args.passwords) if args.passwords else None
        _print_passwords(launch.prepare(settings, passwords))
        print(f"JupyterHub for the class on {settings.url} (Ctrl-C stops it and every student's server)", flush=True)
        os.chdir(settings.private)
        command = launch.hub_command(args.config.resolve() if args.config else launch.CONFIG_FILE)
        os.execve(command[0], command, launch.hub_environment(settings))
    elif args.command in ("classroom", "nbgrader"):
        if args.command == "classroom":
            command = [sys.executable, "-m", "course_lib.dev.classroom", "--course", str(settings.course_dir)]
        else:
            command = [str(launch.BIN / "nbgrader")]
        return launch.run_as_grader(settings, [*command, *(a for a in args.grader_args if a != "--")])
    elif args.command == "load-test":
        from course_lib.hub.loadtest import report_load_test as load_test

        return load_test(args.students, args.out, args.time_limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
