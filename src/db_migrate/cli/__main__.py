"""``python -m db_migrate.cli``: the same as the ``db-migrate`` console script."""

import sys

from db_migrate.cli import main

sys.exit(main())
