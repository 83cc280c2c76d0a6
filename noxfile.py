"""Developer sessions: `nox` runs tests, lint and typecheck."""

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:  # as .ci/run: the tests' and benchmarks' imports too
    session.install("-e", ".[test,dev]")
    session.run("mypy", "--strict", "segfetch", "tests", "benchmarks")


@nox.session
def reliability(session: nox.Session) -> None:
    # The long version: the whole matrix (~20 min). curl and aria2c run as peers from PATH
    # (`apt-get install curl aria2`); a missing one is skipped and the report says so.
    session.install("-e", ".[test]")
    session.run("python", "benchmarks/reliability.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:  # benchmarks against peers; `-- --quick`: < 3 minutes
    session.install("-e", ".[bench]")
    session.run("python", "benchmarks/bench.py", *session.posargs)
