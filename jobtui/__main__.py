"""`python -m jobtui` is the `jobtui` command."""

from .cli import main

raise SystemExit(main())
