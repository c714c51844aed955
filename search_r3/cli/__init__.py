"""The ``search-r3`` command line: one entry point, one module per subcommand."""
