"""`evalgrid`, the one command of the grid: `main.py` builds the parser, each other module is
one group of subcommands (`python -m app.cli` runs it as the installed `evalgrid` does)."""
