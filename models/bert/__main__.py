"""`python -m models.bert`: see `models.bert.cli`."""

from models.bert.cli import main

raise SystemExit(main())
