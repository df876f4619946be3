"""GrammarTeacher: the built-in teacher's three calls (domain specs, pairs, judging) over the other
modules of this package."""
from __future__ import annotations

import random
from typing import Any

from ... import canonical, dsl
from ...errors import UserError
from ...records import CLARIFICATION, LANGUAGES, REFUSAL, normalize_query
from ..base import (DEFAULT_CLARIFICATION_FRACTION, DEFAULT_CONTEXT_FRACTION, DEFAULT_REFUSAL_FRACTION,
                    GeneratedPair, KindShares, Teacher, Verdict)
from .asking import ClarificationWriter, ContextWriter
from .drafts import CONTEXT_TWINS, draft_pairs, pair
from .generic import generic_pairs
from .lexicon import catalog_ops_by_type, lex_from_spec_field, schema_lexicon
from .phrases import FALLBACK_ENTITY
from .plans import PlanSampler, plan_ast
from .realizer import Realizer
from .refusals import RefusalWriter

FIELDS_PER_SPEC = (5, 8)
MAX_TRIES_PER_PAIR = 40
# Fields a domain might have but a schema lacks, for "unknown field" refusals when a spec has no pool.
GENERIC_MISSING_FIELDS = (
    {"name": "color", "type": "string", "examples": ["red", "blue"], "labels": {"en": ["color"], "fr": ["la couleur"]}},
    {"name": "owner", "type": "string", "examples": ["Martin", "Lee"], "labels": {"en": ["owner"], "fr": ["le propriétaire"]}},
    {"name": "weight_kg", "type": "number", "min": 1, "max": 500, "labels": {"en": ["weight"], "fr": ["le poids"]}},
    {"name": "country", "type": "string", "examples": ["Canada", "Japan"], "labels": {"en": ["country"], "fr": ["le pays"]}},
)


def _rng(*parts: Any) -> random.Random:
    # random.Random seeded with a str is stable across processes (it hashes with SHA-512, not hash()).
    return random.Random(":".join(str(p) for p in parts))


def _entity(spec: dict[str, Any] | None) -> dict[str, Any]:
    entity = (spec or {}).get("entity")
    return entity if isinstance(entity, dict) else FALLBACK_ENTITY


class GrammarTeacher(Teacher):
    """No LLM: samples ASTs from the schema, writes EN/FR requests from templates, judges canonically. The
    project's DSLs get plans of filters and clauses (plans.py, realizer.py); a schema of any other shape gets
    sampled instances phrased leaf by leaf (generic.py)."""

    name = "grammar"
    deterministic = True  # the same seed gives the same pairs: resumed runs regenerate instead of topping up

    def __init__(self, seed: int, refusal_fraction: float = DEFAULT_REFUSAL_FRACTION,
                 clarification_fraction: float = DEFAULT_CLARIFICATION_FRACTION,
                 context_fraction: float = DEFAULT_CONTEXT_FRACTION):
        self.seed = seed
        self.shares = KindShares(refusal_fraction, clarification_fraction, context_fraction)
        self.model = None
        self.concurrency = 1

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": None, "seed": self.seed, **self.shares.describe()}

    # -- stage 1 ---------------------------------------------------------------------------------------------
    async def domain_spec(self, prompt_row: dict[str, Any], examples_per_schema: int, seed: int) -> dict[str, Any]:
        return self.domain_spec_sync(prompt_row, examples_per_schema, seed)

    def domain_spec_sync(self, prompt_row: dict[str, Any], examples_per_schema: int, seed: int) -> dict[str, Any]:
        pool = prompt_row.get("fields")
        where = f"domain prompt '{prompt_row.get('id')}'"
        if not isinstance(pool, list) or len(pool) < FIELDS_PER_SPEC[0]:
            raise UserError(f"{where}: the built-in teacher needs a 'fields' pool of at least "
                            f"{FIELDS_PER_SPEC[0]} candidate fields (see data/domain_prompts.jsonl)")
        dsl.check_fields(pool, where)
        rng = _rng(self.seed, "spec", prompt_row.get("id"), seed)
        count = rng.randint(FIELDS_PER_SPEC[0], min(FIELDS_PER_SPEC[1], len(pool)))
        chosen = set(rng.sample(range(len(pool)), count))
        by_type = {}
        for i, f in enumerate(pool):
            by_type.setdefault(f["type"], []).append(i)
        for wanted in ("enum", "integer", "number"):
            # Keep at least one categorical and one numeric field when the pool has them: richer requests.
            if wanted in by_type and not chosen & set(by_type[wanted]) and (wanted != "number" or "integer" not in by_type):
                chosen.add(rng.choice(by_type[wanted]))
        while len(chosen) > FIELDS_PER_SPEC[1]:
            chosen.remove(rng.choice(sorted(chosen)))
        fields = [self._spec_field(f) for i, f in enumerate(pool) if i in chosen]
        others = [self._spec_field(f) for i, f in enumerate(pool) if i not in chosen]
        body: dict[str, Any] = {"domain": prompt_row["domain"], "description": prompt_row.get("description", "")}
        if prompt_row.get("language_hint"):
            body["language_hint"] = prompt_row["language_hint"]
        if isinstance(prompt_row.get("entity"), dict):
            body["entity"] = prompt_row["entity"]
        body["fields"] = fields
        body["other_fields"] = others
        body["example_queries"] = self._example_queries(body, examples_per_schema, rng)
        return body

    @staticmethod
    def _spec_field(f: dict[str, Any]) -> dict[str, Any]:
        keys = ("name", "type", "description", "values", "min", "max", "labels", "value_labels", "examples")
        return {k: f[k] for k in keys if k in f}

    def _example_queries(self, body: dict[str, Any], count: int, rng: random.Random) -> list[str]:
        table = catalog_ops_by_type()
        lexicon = [lex_from_spec_field(f, table.get(f["type"], {"eq": "eq"})) for f in body["fields"]]
        sampler = PlanSampler(rng, lexicon)
        queries: list[str] = []
        for i in range(count * 4):
            if len(queries) >= count:
                break
            text = Realizer(rng, LANGUAGES[i % 2], _entity(body)).request(sampler.plan())
            if normalize_query(text) not in {normalize_query(q) for q in queries}:
                queries.append(text)
        return queries

    # -- stage 3 ---------------------------------------------------------------------------------------------
    async def generate_pairs(self, schema_row: dict[str, Any], spec: dict[str, Any], n: int,
                             seed: int, focus: str = "") -> list[GeneratedPair]:
        # focus is words for an LLM: this teacher samples, and the boost keeps the samples aimed at the failures
        return self.generate_pairs_sync(schema_row, spec, n, seed)

    def generate_pairs_sync(self, schema_row: dict[str, Any], spec: dict[str, Any] | None, n: int,
                            seed: int) -> list[GeneratedPair]:
        rng = _rng(self.seed, "pairs", schema_row.get("id"), seed)
        if dsl.schema_fields(schema_row["schema"]) is None:  # a user's schema of another shape: generic mode
            return generic_pairs(schema_row["schema"], n, self.refusal_fraction, rng)
        lexicon = schema_lexicon(schema_row, spec)
        entity = _entity(spec)
        names = {lex.name for lex in lexicon}
        missing = [lex_from_spec_field(f) for f in (spec or {}).get("other_fields", []) or []
                   if isinstance(f, dict) and f.get("name") not in names and f.get("type") in dsl.FIELD_TYPES]
        if not missing:
            missing = [lex_from_spec_field(f) for f in GENERIC_MISSING_FIELDS if f["name"] not in names]
        sampler = PlanSampler(rng, lexicon)
        refusals = RefusalWriter(rng, lexicon, missing)
        clarifications = ClarificationWriter(rng, lexicon)
        contexts = ContextWriter(rng, lexicon)
        # An old schema (made before its template had a Clarification) cannot take this teacher's questions.
        asks = dsl.validator_for(schema_row["schema"]).is_valid(dsl.SAMPLE_CLARIFICATION)

        def write(kind: str, lang: str) -> list[GeneratedPair]:
            if kind == REFUSAL:
                return [pair(refusals.write(lang, entity), lang)]
            if kind == CLARIFICATION and asks:
                return clarifications.write(lang, entity)
            if kind == CONTEXT_TWINS and asks and contexts.kinds():
                return contexts.write(lang, entity)
            plan = sampler.plan()  # a query; also in place of a kind this schema cannot take
            return [pair((Realizer(rng, lang, entity).request(plan), plan_ast(plan)), lang)]

        return draft_pairs(n, self.shares, rng, write, MAX_TRIES_PER_PAIR)

    # -- evaluation ------------------------------------------------------------------------------------------
    async def judge(self, schema: dict[str, Any], query: str, gold_ast: dict[str, Any] | None,
                    student_ast: dict[str, Any] | None, student_raw: str) -> Verdict:
        if gold_ast is None:
            return Verdict(accept=False, canonical_ast=None, reason="no gold AST to compare with")
        accept = canonical.semantic_match(gold_ast, student_ast, dsl.range_aliases(schema), schema)
        reason = "same meaning as the gold AST" if accept else "differs from the gold AST"
        return Verdict(accept=accept, canonical_ast=gold_ast, reason=reason)
