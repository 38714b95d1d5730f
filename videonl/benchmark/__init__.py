"""Benchmarks that print figures: `videonl benchmark {subcommand} --help`.

Each module of this package that defines `add_parser(subparsers)` adds one subcommand; the parser it adds
carries the function to run as its `run` default.
"""
