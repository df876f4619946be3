"""Batched generation and schema-constrained decoding (xgrammar) on a tiny random student."""
from __future__ import annotations

import json

import pytest
import torch
import xgrammar as xgr
from helpers import make_tiny_corpus, make_tiny_schema_record, make_tiny_student

from ast_distill import dsl, student
from ast_distill.canonical import render_ast
from ast_distill.errors import UserError
from ast_distill.scoring import score_output
from ast_distill.generation import Generation, GrammarCache, StudentGenerator, grammar_schema

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def generator(tmp_path_factory: pytest.TempPathFactory) -> StudentGenerator:
    path = make_tiny_student(tmp_path_factory.mktemp("gen"))
    model, tokenizer = student.load_student(path, device="cpu")
    return StudentGenerator(model, tokenizer, stop_token_ids=student.stop_token_ids(tokenizer))


@pytest.fixture(scope="module")
def schema() -> dict:
    return make_tiny_schema_record()["schema"]


def prompts(generator: StudentGenerator, rows: list[dict]) -> list[str]:
    return [student.prompt_text(generator.tokenizer, r["prompt"]) for r in rows]


def test_minified_target_completions_are_accepted_token_by_token(generator: StudentGenerator, schema: dict) -> None:
    rows = make_tiny_corpus(6)  # every shape of the tiny corpus: filters, and, range, sort, limit, refusal
    for row in rows:
        matcher = generator.grammars.matcher(schema)
        ids = generator.tokenizer(render_ast(row["ast"]), add_special_tokens=False)["input_ids"]
        assert all(matcher.accept_token(t) for t in ids), render_ast(row["ast"])
        stop = generator.stop_token_ids[0]
        assert matcher.accept_token(stop) and matcher.is_terminated()


def test_every_query_key_is_accepted_in_the_order_render_ast_writes_it(generator: StudentGenerator,
                                                                      schema: dict) -> None:
    # Every key the DSL has, nested, in the order render_ast writes it.
    ast = {"type": "query",
           "filter": {"or": [{"not": {"field": "price", "op": "above", "value": 2.5}},
                             {"and": [{"field": "category", "op": "one_of", "value": ["toy", "book"]},
                                      {"field": "released", "op": "within", "value": ["2024-01-01", "2024-12-31"]}]}]},
           "select": ["name", "stock"], "aggregate": {"function": "avg", "field": "price"},
           "group_by": ["category"], "sort": [{"field": "stock", "order": "desc"}], "limit": 10}
    assert dsl.validation_error(schema, ast) is None
    matcher = generator.grammars.matcher(schema)
    ids = generator.tokenizer(render_ast(ast), add_special_tokens=False)["input_ids"]
    assert all(matcher.accept_token(t) for t in ids) and matcher.accept_token(generator.stop_token_ids[0])


@pytest.mark.parametrize("text", [
    '{"type": "query"}',  # whitespace: the student writes minified JSON only
    '{"type":"query","select":["colour"]}',  # no such field
    '{"filter":{"field":"price","op":"above","value":1},"type":"query"}',  # keys out of the trained order
    '{"type":"query","filter":{"field":"price","op":"equals","value":"cheap"}}',  # value of the wrong type
])
def test_grammar_rejects_outputs_the_schema_or_the_trained_format_forbids(generator: StudentGenerator,
                                                                          schema: dict, text: str) -> None:
    matcher = generator.grammars.matcher(schema)
    ids = generator.tokenizer(text, add_special_tokens=False)["input_ids"]
    accepted = all(matcher.accept_token(t) for t in ids) and matcher.accept_token(generator.stop_token_ids[0])
    assert not accepted


def test_untrained_constrained_outputs_parse_and_validate_unless_truncated(generator: StudentGenerator,
                                                                           schema: dict) -> None:
    rows = make_tiny_corpus(12)
    texts = prompts(generator, rows)
    outputs = []
    torch.manual_seed(0)
    # Sampling at temperature 1 walks far into the grammar (nested conditions, free strings, refusals).
    for temperature in (0.0, 1.0):
        for batch in generator.generate_all(texts, [schema] * len(texts), batch_size=5, max_new_tokens=80,
                                            temperature=temperature, progress=False):
            outputs += [gen for _, gen in batch]
    finished = [g for g in outputs if not g.truncated]
    assert len(finished) >= 3  # refusals with long free strings may run out of budget: that is "truncated"
    for gen in finished:
        ast = json.loads(gen.text)
        assert dsl.validation_error(schema, ast) is None, gen.text
    assert len({g.text for g in finished}) > 1


def test_unconstrained_untrained_outputs_are_not_json(generator: StudentGenerator) -> None:
    rows = make_tiny_corpus(4)
    outputs = [g for b in generator.generate_all(prompts(generator, rows), [None] * 4, batch_size=4,
                                                 max_new_tokens=20, progress=False) for _, g in b]
    assert len(outputs) == 4
    assert not any(g.text.startswith('{"type"') for g in outputs)


def test_batched_left_padded_greedy_equals_one_prompt_at_a_time(generator: StudentGenerator, schema: dict) -> None:
    rows = make_tiny_corpus(6)
    texts = prompts(generator, rows)
    assert len({len(generator.encode(t)) for t in texts}) > 1  # prompts of different lengths: padding matters
    for constraint in (None, schema):
        one = {i: g.token_ids for b in generator.generate_all(texts, [constraint] * 6, batch_size=1,
                                                              max_new_tokens=24, progress=False) for i, g in b}
        many = {i: g.token_ids for b in generator.generate_all(texts, [constraint] * 6, batch_size=6,
                                                               max_new_tokens=24, progress=False) for i, g in b}
        assert one == many


def test_a_row_out_of_token_budget_is_truncated(generator: StudentGenerator, schema: dict) -> None:
    texts = prompts(generator, make_tiny_corpus(2))
    outputs = [g for b in generator.generate_all(texts, [schema] * 2, batch_size=2, max_new_tokens=2,
                                                 progress=False) for _, g in b]
    assert all(g.truncated and len(g.token_ids) == 2 for g in outputs)


def test_tokens_with_control_characters_are_masked_but_stop_tokens_are_not(generator: StudentGenerator) -> None:
    cache = generator.grammars
    vocab = cache.info.decoded_vocab
    logits = torch.zeros(1, generator.vocab_size)
    xgr.apply_token_bitmask_inplace(logits, cache.json_safe_mask.unsqueeze(0), vocab_size=generator.vocab_size)
    masked = {i for i in range(generator.vocab_size) if logits[0, i] == float("-inf")}
    with_control = {i for i, text in enumerate(vocab) if any(b < 0x20 for b in text)} - set(generator.stop_token_ids)
    assert with_control and masked == with_control
    assert not masked & set(generator.stop_token_ids)


def test_each_schema_is_compiled_once(generator: StudentGenerator, schema: dict) -> None:
    cache = GrammarCache(generator.tokenizer, vocab_size=generator.vocab_size,
                         stop_token_ids=generator.stop_token_ids)
    assert cache.compiled(schema) is cache.compiled(json.loads(json.dumps(schema)))


def test_a_schema_declaring_properties_in_another_order_still_gets_the_trained_order(
        generator: StudentGenerator, schema: dict) -> None:
    shuffled = json.loads(json.dumps(schema))
    props = shuffled["$defs"]["Query"]["properties"]
    shuffled["$defs"]["Query"]["properties"] = dict(reversed(list(props.items())))
    matcher = generator.grammars.matcher(shuffled)
    text = render_ast({"type": "query", "select": ["name"], "limit": 2})
    ids = generator.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert all(matcher.accept_token(t) for t in ids) and matcher.accept_token(generator.stop_token_ids[0])


def test_a_schema_xgrammar_cannot_compile_is_a_user_error(generator: StudentGenerator) -> None:
    with pytest.raises(UserError, match="--no-constrained"):
        generator.grammars.compiled({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}})


def test_the_grammar_leaves_max_length_to_validation_which_reports_an_overlong_string_invalid(
        generator: StudentGenerator, schema: dict) -> None:
    # Compiling maxLength costs ~13 s a schema on a 262k vocabulary; the full schema still judges the output.
    bound = schema["$defs"]["Refusal"]["properties"]["reason"]["maxLength"]
    ast = {"type": "refusal", "reason": "not about products " * (bound // 10), "suggestion": "ask about stock"}
    assert len(ast["reason"]) > bound
    text = render_ast(ast)
    ids = generator.tokenizer(text, add_special_tokens=False)["input_ids"]
    matcher = generator.grammars.matcher(schema)
    assert all(matcher.accept_token(t) for t in ids) and matcher.accept_token(generator.stop_token_ids[0])
    row = {"id": "r", "schema_id": "s", "ast": ast}
    record = score_output(row, schema, Generation(text=text, token_ids=ids, truncated=False, latency_ms=0.0),
                          prompt_text="", constrained=True)
    assert record["parsed"] and not record["schema_valid"]
    assert "reason" in record["validation_error"]


def test_grammar_schema_drops_max_length_only_where_it_is_a_keyword() -> None:
    schema = {"type": "object", "required": ["maxLength"],
              "properties": {"maxLength": {"type": "string", "minLength": 1, "maxLength": 3},
                             "kind": {"enum": [{"maxLength": 2}]}}}
    assert grammar_schema(schema) == {"type": "object", "required": ["maxLength"],
                                      "properties": {"kind": {"enum": [{"maxLength": 2}]},
                                                     "maxLength": {"type": "string", "minLength": 1}}}
    assert schema["properties"]["maxLength"]["maxLength"] == 3  # the caller's schema is left whole


def test_an_unbounded_number_is_bounded_in_the_grammar_so_a_repeating_student_still_ends_valid(
        generator: StudentGenerator) -> None:
    from ast_distill.generation import NUMBER_BOUND

    schema = {"type": "object", "required": ["a", "b", "c"], "additionalProperties": False,
              "properties": {"a": {"type": "number"}, "b": {"type": ["integer", "null"], "minimum": 0},
                             "c": {"type": "integer", "exclusiveMaximum": 7}}}
    props = grammar_schema(schema)["properties"]
    assert props["a"] == {"type": "number", "maximum": NUMBER_BOUND, "minimum": -NUMBER_BOUND}
    assert props["b"] == {"type": ["integer", "null"], "minimum": 0, "maximum": NUMBER_BOUND}  # its own bound kept
    assert props["c"] == {"type": "integer", "exclusiveMaximum": 7, "minimum": -NUMBER_BOUND}
    assert "maximum" not in schema["properties"]["a"]  # validation still uses the schema as written
    # The tiny untrained student repeats a digit ("4444..."): bounded, its number ends and the output validates.
    [(_, gen)] = next(generator.generate_all(["x"], [schema], batch_size=1, max_new_tokens=80, progress=False))
    assert not gen.truncated and dsl.validation_error(schema, json.loads(gen.text)) is None


def test_the_recorded_token_probabilities_are_the_models_own_for_the_tokens_it_wrote(generator: StudentGenerator,
                                                                                    schema: dict) -> None:
    rows = make_tiny_corpus(3)
    texts = prompts(generator, rows)
    for constrained in (False, True):
        outputs = generator.generate_batch([generator.encode(t) for t in texts],
                                           [schema if constrained else None] * len(texts), max_new_tokens=24)
        for text, gen in zip(texts, outputs):
            prompt, written = generator.encode(text), gen.token_ids
            assert gen.token_logprobs is not None and len(gen.token_logprobs) == len(written) + (not gen.truncated)
            # The model's own log-probabilities, one forward pass over prompt + answer (+ a stop token).
            with torch.no_grad():
                logits = generator.model(torch.tensor([prompt + written])).logits[0, len(prompt) - 1:]
            all_logprobs = torch.log_softmax(logits.float(), dim=-1)
            free = all_logprobs[:-1].gather(1, torch.tensor(written)[:, None]).squeeze(1)
            recorded = torch.tensor(gen.token_logprobs[:len(written)])
            if constrained:  # renormalized over what the grammar allows: never less likely than unmasked
                assert bool((recorded >= free - 1e-4).all())
            else:
                assert torch.allclose(recorded, free, atol=1e-4)
                if not gen.truncated:  # the stop token's, which ends the answer, counts too
                    stops = all_logprobs[-1, generator.stop_token_ids]
                    assert any(abs(float(v) - gen.token_logprobs[-1]) < 1e-4 for v in stops)
            assert gen.answer_logprob == pytest.approx(float(torch.tensor(gen.token_logprobs).sum()), abs=1e-4)
            assert 0.0 <= gen.sequence_probability <= 1.0
