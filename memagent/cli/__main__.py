"""`python -m memagent.cli`: the same as the `memagent` command."""

from memagent.cli import main

main()
