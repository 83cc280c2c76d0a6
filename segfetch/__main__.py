from segfetch.cli import run

raise SystemExit(run())
