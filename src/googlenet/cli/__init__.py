"""The `googlenet` command line (argument parsing and printing only); `main` is the entry point."""
