"""Entry point: ``python3 <payload>.pyz`` (the zipapp's root ``__main__.py`` is this file) or
``python3 -m agent`` from ``startup/``. Absolute import: at the zipapp's root there is no package."""

import sys

from agent.main import main

sys.exit(main())
