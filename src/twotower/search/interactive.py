"""Interactive search in the terminal: type a query, read the ranked passages, repeat.

Commands: `:k N` sets the number of results, `:help` lists commands, `:q` (or Ctrl-D) quits.
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from twotower.search.errors import SearchError
from twotower.search.render import render_results
from twotower.search.searcher import Searcher

HELP = "type a query and press Enter · :k N  results per query · :help · :q  quit"


def interactive(searcher: Searcher, k: int = 10, console: Console | None = None) -> None:
    console = console or Console()
    try:
        import readline  # noqa: F401  (line editing and history for input(), where the platform has it)
    except ImportError:
        pass
    console.print(Text.assemble(("twotower search", "bold cyan"), "  ", (searcher.describe(), "dim")))
    console.print(Text(HELP, style="dim"))
    while True:
        try:
            line = console.input("[bold cyan]query›[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        if not line:
            continue
        if line in (":q", ":quit", ":exit"):
            return
        if line in (":h", ":help"):
            console.print(Text(HELP, style="dim"))
            continue
        if line.startswith(":k"):
            try:
                k = max(1, int(line[2:].strip()))
                console.print(Text(f"showing {k} results per query", style="dim"))
            except ValueError:
                console.print(Text(":k takes a number, e.g. :k 20", style="red"))
            continue
        try:
            console.print(render_results(searcher.search(line, k=k), searcher.device, searcher.describe(short=True)))
        except SearchError as exc:
            console.print(Text(str(exc), style="red"))
