"""`python -m cli` is the same as `tickstore`."""

from cli.main import main

main()
