"""`python -m core.cli`: the edgetrim command."""
from core.cli.main import main

raise SystemExit(main())
