"""``python -m casewatch``: the same command line as the ``casewatch`` script."""

from casewatch.cli import main

raise SystemExit(main())
