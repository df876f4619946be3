"""--help shows each flag's default value, from the config the command line (or the script) names."""
from __future__ import annotations

import argparse
import json

import pytest

from ast_distill import cli


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="config/defaults.json")
    parser.add_argument("--max-new-tokens", type=int, help="budget (default: evaluation.max_new_tokens)")
    parser.add_argument("--max-minutes", dest="max_minutes", type=float, help="training time budget")
    parser.add_argument("--max-steps", dest="max_steps", type=int, help="optimizer steps")
    parser.add_argument("--out", default="x.json", help="where to write")
    return parser


def test_help_fills_in_config_values_and_own_defaults(tmp_path, capsys):
    overlay = tmp_path / "c.json"
    overlay.write_text(json.dumps({"evaluation": {"max_new_tokens": 77}, "training": {"max_minutes": 5.5}}))
    with pytest.raises(SystemExit):
        cli.run(lambda args: 0, _parser(), ["--config", str(overlay), "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: evaluation.max_new_tokens = 77)" in text  # the named key, from the named config
    assert "training time budget (default: training.max_minutes = 5.5)" in text  # a key named like the flag
    assert "where to write (default: x.json)" in text  # a flag's own default
