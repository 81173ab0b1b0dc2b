"""`python -m app.cli ...`: the `evalgrid` command without the installed script."""

import sys

from app.cli.main import main

sys.exit(main())
