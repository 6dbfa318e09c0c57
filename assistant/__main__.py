"""`python -m assistant ...`: the command line lives in `assistant.cli`."""

from assistant.cli import main

raise SystemExit(main())
