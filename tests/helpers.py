"""Tiny shared fixtures for the tests: one schema, d_04-shaped rows, a tiny scratch student, a tiny LoRA base.

Import from a test file as ``from helpers import make_tiny_corpus, make_tiny_student`` (pytest puts tests/
on sys.path). Everything is built locally in well under a second; no download, no teacher.
"""
from __future__ import annotations

import torch

from pathlib import Path
from typing import Any

from ast_distill import dsl
from ast_distill.config import REPO_ROOT
from ast_distill.jsonl import stable_id, write_jsonl_atomic
from ast_distill.prompting import build_completion, build_prompt
from ast_distill.student.scratch import build_scratch_model, corpus_texts, train_tokenizer

TINY_DOMAIN = "shop products"
TINY_FIELDS: list[dict[str, Any]] = [
    {"name": "name", "type": "string", "description": "product name"},
    {"name": "category", "type": "enum", "description": "product family", "values": ["book", "toy", "food"]},
    {"name": "price", "type": "number", "description": "price in euros"},
    {"name": "stock", "type": "integer", "description": "units in stock"},
    {"name": "released", "type": "date", "description": "release date"},
    {"name": "active", "type": "boolean", "description": "still sold"},
]
TINY_OPERATORS = {"eq": "equals", "gt": "above", "lt": "below", "between": "within", "in": "one_of"}
TINY_SIZES = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1, "head_dim": 16,
              "intermediate_size": 64}
TINY_VOCAB = 400


def make_tiny_schema_record() -> dict[str, Any]:
    """A d_02 record {id, domain, schema, operators} built with dsl.build_schema from the repo's data files."""
    template = dsl.load_template(REPO_ROOT / "data" / "base_schema_template.json")
    catalog = dsl.load_catalog(REPO_ROOT / "data" / "operator_catalog.json")
    schema = dsl.build_schema(template, TINY_DOMAIN, "Products of a small shop.", TINY_FIELDS,
                              TINY_OPERATORS, catalog)
    return {"id": stable_id("tiny-schema", TINY_DOMAIN), "domain": TINY_DOMAIN, "schema": schema,
            "operators": dict(TINY_OPERATORS)}


def write_tiny_schemas(path: str | Path) -> dict[str, Any]:
    """Write the tiny schema as a one-line d_02 file; returns the record."""
    record = make_tiny_schema_record()
    write_jsonl_atomic(path, [record])
    return record


def _example(i: int) -> tuple[str, str, dict[str, Any]]:
    """(language, query, ast) number i: a handful of shapes with varying values, EN and FR."""
    cat = ["book", "toy", "food"][i % 3]
    price = 5 + (i * 7) % 90
    stock = 1 + (i * 3) % 40
    year = 2020 + i % 5
    shapes = [
        ("en", f"products above {price} euros",
         {"type": "query", "filter": {"field": "price", "op": "above", "value": price}}),
        ("fr", f"les produits de la catégorie {cat}",
         {"type": "query", "filter": {"field": "category", "op": "equals", "value": cat}}),
        ("en", f"how many {cat} items have fewer than {stock} units",
         {"type": "query", "filter": {"and": [{"field": "category", "op": "equals", "value": cat},
                                              {"field": "stock", "op": "below", "value": stock}]},
          "aggregate": {"function": "count"}}),
        ("fr", f"produits sortis entre {year}-01-01 et {year}-12-31, triés par prix",
         {"type": "query", "filter": {"field": "released", "op": "within",
                                      "value": [f"{year}-01-01", f"{year}-12-31"]},
          "sort": [{"field": "price", "order": "asc"}]}),
        ("en", f"the {stock} cheapest active products",
         {"type": "query", "filter": {"field": "active", "op": "equals", "value": True},
          "sort": [{"field": "price", "order": "asc"}], "limit": stock}),
        ("en", "book the cheapest flight to Paris",
         {"type": "refusal", "reason": "the schema describes shop products, not flights",
          "suggestion": "ask about products, prices or stock"}),
    ]
    return shapes[i % len(shapes)]


def make_tiny_corpus(n: int, *, val_every: int = 5, schema_format: str = "compact") -> list[dict[str, Any]]:
    """n d_04-shaped rows of the tiny schema; every val_every-th row is split "val" (0 = all "train").

    Rows: {id, schema_id, split, schema_seen, language, kind, prompt, completion, ast, query}. Change a row's
    split (e.g. to "pref" or "test") in the test when you need other splits.
    """
    record = make_tiny_schema_record()
    rows = []
    for i in range(n):
        language, query, ast = _example(i)
        split = "val" if val_every and i % val_every == val_every - 1 else "train"
        rows.append({
            "id": stable_id("tiny-row", i), "schema_id": record["id"], "split": split, "schema_seen": True,
            "language": language, "kind": "refusal" if ast["type"] == "refusal" else "query",
            "prompt": build_prompt(record["schema"], query, schema_format),
            "completion": build_completion(ast), "ast": ast, "query": query,
        })
    return rows


def _save_tiny(out: Path, texts: list[str] | None) -> str:
    texts = texts if texts is not None else list(corpus_texts(make_tiny_corpus(24)))
    tokenizer = train_tokenizer(texts, TINY_VOCAB)
    torch.manual_seed(1)  # fixed weights: tests of untrained students are deterministic (seed 1 writes varied JSON)
    model = build_scratch_model(tokenizer, **TINY_SIZES, max_position_embeddings=1024)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def make_tiny_student(tmp_path: str | Path, texts: list[str] | None = None) -> str:
    """Save a tiny random scratch student (hidden 32, 2 layers, ~400-token BPE) + tokenizer; return its dir.

    texts: what the tokenizer is trained on (default: the tiny corpus's prompts and completions).
    """
    return _save_tiny(Path(tmp_path) / "tiny_student", texts)


def make_tiny_lora_base(tmp_path: str | Path) -> str:
    """Save a tiny random Gemma3ForCausalLM + tokenizer as a hub-like base model dir for LoRA tests."""
    return _save_tiny(Path(tmp_path) / "tiny_lora_base", None)


# Words the tiny corpus never uses: a SentencePiece base trained with them has pieces a trim can drop.
OTHER_TEXTS = ["Zebras graze quietly while the lighthouse keeper writes poetry about thunderstorms.",
               "Les bibliothèques municipales ouvrent leurs portes aux astronomes amateurs chaque vendredi."] * 20


def make_tiny_sentencepiece_base(tmp_path: str | Path) -> str:
    """Save a tiny random Gemma3ForCausalLM with a SentencePiece BPE tokenizer (byte fallback, Gemma's special
    ids, <mask> and turn markers, Gemma's chat template) as a local base folder, as the packaged Gemma base is made
    (GemmaTokenizer adds a <mask> of its own beyond a vocabulary without one)."""
    import io

    import sentencepiece as spm

    from ast_distill.student.bases import save_sentencepiece_tokenizer
    from ast_distill.student.chat import CHAT_TEMPLATE

    out = Path(tmp_path) / "tiny_sentencepiece_base"
    out.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(corpus_texts(make_tiny_corpus(24))) + OTHER_TEXTS), model_writer=model,
        model_type="bpe", vocab_size=600, byte_fallback=True, character_coverage=1.0,
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>",
        unk_piece="<unk>", user_defined_symbols=["<mask>", "<start_of_turn>", "<end_of_turn>"], add_dummy_prefix=False,
        normalization_rule_name="identity", remove_extra_whitespaces=False, minloglevel=2)
    tokenizer = save_sentencepiece_tokenizer(model.getvalue(), out, CHAT_TEMPLATE)
    torch.manual_seed(1)
    build_scratch_model(tokenizer, **TINY_SIZES, max_position_embeddings=1024).save_pretrained(out)
    return str(out)


def make_memorizing_student(tmp_path: str | Path, rows: list[dict[str, Any]], steps: int = 160) -> str:
    """A tiny scratch student trained (plain AdamW, one row at a time) until it writes the gold AST of each of
    `rows` for its prompt: a student that scores, for tests that need a right answer (~20 s for 6 rows)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ast_distill.canonical import render_ast
    from ast_distill.student import prompt_text

    path = make_tiny_student(Path(tmp_path) / "untrained")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    examples = []
    for row in rows:
        prompt = prompt_text(tokenizer, row["prompt"])
        ids = tokenizer(prompt + render_ast(row["ast"]) + "<end_of_turn>", return_tensors="pt",
                        add_special_tokens=False).input_ids
        labels = ids.clone()
        labels[:, :len(tokenizer(prompt, add_special_tokens=False).input_ids)] = -100  # learn the answer only
        examples.append((ids, labels))
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        for ids, labels in examples:
            model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    out = Path(tmp_path) / "memorizing_student"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)
