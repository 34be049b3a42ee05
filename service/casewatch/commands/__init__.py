"""One module per ``casewatch`` subcommand: ``configure(parser)`` and ``run(args) -> int``."""
