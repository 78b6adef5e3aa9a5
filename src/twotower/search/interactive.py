"""Interactive search in the terminal: type a query, read the ranked passages, repeat.

Commands: `:k N` sets the number of results, `:mode dense|bm25|hybrid` the ranking (`:m` cycles through the
modes the index serves), `:help` lists commands, `:q` (or Ctrl-D) quits.
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from twotower.search.errors import SearchError
from twotower.search.render import render_results
from twotower.search.searcher import Searcher

HELP = (
    "type a query and press Enter · :k N  results per query · :mode dense|bm25|hybrid  (:m cycles) · :help · :q  quit"
)


def switch_mode(searcher: Searcher, current: str, line: str) -> tuple[str, Text]:
    """The mode after the command `line` (`:m` or `:mode NAME`), and what to tell the user."""
    name = line.partition(" ")[2].strip()
    modes = searcher.modes
    if not name:  # `:m` / `:mode`: the next mode the index serves
        name = modes[(modes.index(current) + 1) % len(modes)] if current in modes else modes[0]
    if name not in ("dense", "bm25", "hybrid"):
        return current, Text(f"unknown mode {name!r}: dense, bm25 or hybrid", style="red")
    if name not in modes:
        return current, Text(
            f"this index has no BM25 part, so only dense search; `twotower index --add-bm25 --out "
            f"{searcher.folder}` adds one",
            style="red",
        )
    return name, Text(f"mode: {name}", style="dim")


def interactive(
    searcher: Searcher,
    k: int = 10,
    console: Console | None = None,
    mode: str = "dense",
    fusion: str | None = None,
    weight: float | None = None,
) -> None:
    console = console or Console()
    try:
        import readline  # noqa: F401  (line editing and history for input(), where the platform has it)
    except ImportError:
        pass
    console.print(Text.assemble(("twotower search", "bold cyan"), "  ", (searcher.describe(), "dim")))
    console.print(Text(HELP, style="dim"))
    while True:
        try:
            line = console.input(f"[bold cyan]{mode}›[/] ").strip()
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
        if line == ":m" or line.startswith(":mode"):
            mode, message = switch_mode(searcher, mode, line)
            console.print(message)
            continue
        if line.startswith(":k"):
            try:
                k = max(1, int(line[2:].strip()))
                console.print(Text(f"showing {k} results per query", style="dim"))
            except ValueError:
                console.print(Text(":k takes a number, e.g. :k 20", style="red"))
            continue
        try:
            found = searcher.search(line, k, mode, fusion, weight)
            console.print(render_results(found, searcher.device, searcher.describe(short=True)))
        except SearchError as exc:
            console.print(Text(str(exc), style="red"))
