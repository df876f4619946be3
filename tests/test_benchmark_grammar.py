"""The benchmark's xgrammar measurement runs on a tiny student and reports what it measured (never how fast)."""
from __future__ import annotations

from pathlib import Path

import torch
from helpers import make_tiny_corpus, make_tiny_schema_record, make_tiny_student

from ast_distill import student
from ast_distill.benchmark import grammar_cost
from ast_distill.generation import StudentGenerator

torch.set_num_threads(1)


def test_grammar_cost_times_each_schema_and_each_step_of_the_gold_completions(tmp_path: Path) -> None:
    model, tokenizer = student.load_student(make_tiny_student(tmp_path), device="cpu")
    generator = StudentGenerator(model, tokenizer, stop_token_ids=student.stop_token_ids(tokenizer))
    record = make_tiny_schema_record()
    rows = make_tiny_corpus(4)
    cost = grammar_cost(generator, rows, {record["id"]: record["schema"]}, schema_count=3, steps_per_schema=5)
    assert cost["schemas"] == 1 and cost["mask_steps"] == 5  # one schema in the corpus; its gold has > 5 tokens
    assert cost["compile_ms_max"] >= cost["compile_ms_mean"] > 0 and cost["compile_ms_max_length_kept"] > 0
    assert cost["mask_ms_per_token_p95"] > 0
