"""`python -m simulator [OPTIONS]`: the simulator command without the rest of the CLI (benchmarks use it)."""

from __future__ import annotations

import typer

from simulator.cli import register


def main() -> None:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(app)
    app()


if __name__ == "__main__":
    main()
