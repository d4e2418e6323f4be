"""``python -m backoffice``: the same program as the ``kiosk-backoffice`` entry point."""

from backoffice.cli import main

raise SystemExit(main())
