"""The `tritonflow` console script: `tritonflow bench` (cli_bench.py: every workload against torch
eager and torch.compile), `tritonflow aot` and `tritonflow precompile` (cli_aot.py: compile a function
for a GPU target). Here: the parser, its one-line usage errors, and the dispatch.
"""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = OneLineErrorParser(prog="tritonflow", description="tritonflow command-line tools")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineErrorParser)
    from tritonflow import cli_aot, cli_bench
    cli_bench.add_command(commands)
    cli_aot.add_commands(commands)
    args = parser.parse_args(argv)
    if args.command == "bench":
        return cli_bench.run(args)
    if args.command in ("aot", "precompile"):
        return cli_aot.run(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, with its usage errors in one line (`tritonflow bench: error: ...`), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


if __name__ == "__main__":
    sys.exit(main())
