"""ast_distill: distil a teacher LLM into a tiny student that writes JSON ASTs for a DSL's JSON Schema.

The library every script in scripts/ shares. Stages talk only through JSONL files and checkpoint folders.
"""

__version__ = "0.1.0"
