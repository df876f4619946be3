"""`uv run python -m ast_distill.settings [--write]`: regenerate or check the generated files (generated.py)."""
import sys

from .generated import main

sys.exit(main())
