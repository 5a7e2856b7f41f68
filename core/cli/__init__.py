"""The command line: ``python -m core ...`` and ``bda ...`` (entry point :func:`core.cli.main.main`)."""
