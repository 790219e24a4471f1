"""``python -m cloud``: the same as the ``endpoint-cloud`` command."""

from cloud.cli import main

raise SystemExit(main())
