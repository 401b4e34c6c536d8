"""``python -m snappix.tools.claims``: see :mod:`snappix.tools.claims.cli`."""
from snappix.tools.claims.cli import main

raise SystemExit(main())
