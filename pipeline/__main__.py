"""``python -m pipeline``: the ``pipeline`` command."""

from pipeline.cli.main import main

main()
