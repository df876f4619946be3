"""The built-in grammar teacher: no LLM, deterministic for a seed, fast.

It samples valid ASTs from a schema (fields, operators and value shapes come from ``dsl.schema_fields``;
labels, value ranges and string examples from the domain spec) and realizes each one as an English or a
French request from templates: field synonyms, several phrasings per canonical operator, imperative /
question / terse keyword styles, optional parts, dates written as ISO or in words, enum values by their
spoken label. Every value of an AST can be read back from its request text, because the student must copy
it. A share of the requests are things the schema cannot express (a field it lacks, a write operation, an
operator it lacks); their AST is a refusal. Judging is canonical comparison with the gold AST.

Conventions that keep one request text = one AST (the student cannot guess between equivalent spellings):
conditions of one request use distinct fields; ``in``/``not_in`` always list two or more values; a date
field is compared with ``before``/``after`` when the schema has them and with ``lt``/``gt`` only otherwise;
``not`` is phrased as an exclusion ("excluding those whose ...") and ``ne`` as "is not"; booleans use
``eq`` only.

Modules, in the order a request is made: ``lexicon`` (fields and their words), ``values`` (sampling and
writing values), ``plans`` (what a request asks, and its AST), ``phrases`` (the EN/FR templates),
``wording`` (French articles, lists, tidying), ``clauses`` and ``realizer`` (plan -> text), ``refusals``
(requests the schema cannot express), ``teacher`` (GrammarTeacher).
"""
from __future__ import annotations

from .lexicon import Lex, lex_from_spec_field, schema_lexicon
from .plans import Leaf, Plan, PlanSampler, plan_ast
from .realizer import Realizer
from .teacher import GrammarTeacher
from .values import MONTHS, date_text, enum_text, number_text

__all__ = ["GrammarTeacher", "Realizer", "PlanSampler", "Lex", "Leaf", "Plan", "schema_lexicon", "plan_ast",
           "lex_from_spec_field", "date_text", "enum_text", "number_text", "MONTHS"]
