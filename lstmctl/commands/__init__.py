"""What each command does and prints: one module per command or group.

cli.py parses the options and calls one function here with plain arguments; that function does the
work (through lstmctl.session, lstmctl.train, lstmctl.evaluation, lstmctl.plots) and prints its own
output: tables for people on stdout, JSON with --json, progress and notes on stderr. Shared output
helpers are in output.py. This package's __init__ imports nothing, so importing one command module
does not pull in the others.
"""
