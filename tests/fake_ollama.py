"""The fake Ollama/OpenAI server for tests (it lives in the package so scripts/benchmark.py can use it too),
plus canned teacher content for a real DSL schema built from data/."""
from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

from ast_distill import dsl
from ast_distill.testing.fake_ollama import (  # noqa: F401  (re-exported for tests)
    FAULTS,
    ChatRequest,
    FakeOllama,
    example_from_schema,
    free_port,
    schema_responder,
)

# --- canned teacher content for a real DSL schema (built from data/ like build_schemas.py does) ---------

REPO = Path(__file__).resolve().parents[1]
OPERATORS = {"eq": "equals", "gt": "above", "between": "in_range", "in": "one_of", "contains": "includes"}
FIELDS = [
    {"name": "city", "type": "string", "description": "the city the home is in"},
    {"name": "price", "type": "number", "description": "asking price in euros", "min": 50000, "max": 2000000},
    {"name": "kind", "type": "enum", "description": "kind of home", "values": ["flat", "house", "studio"]},
    {"name": "rooms", "type": "integer", "description": "number of rooms", "min": 1, "max": 12},
    {"name": "listed_on", "type": "date", "description": "the day the listing went online"},
]
CANNED_SPEC = {"description": "Homes for sale.", "fields": FIELDS,
               "example_queries": ["flats in Lyon", "maisons de plus de 4 pièces"]}
CANNED_PAIRS = [
    {"language": "en", "query": "flats in Lyon",
     "ast": {"type": "query", "filter": {"and": [{"field": "kind", "op": "equals", "value": "flat"},
                                                 {"field": "city", "op": "equals", "value": "Lyon"}]}}},
    {"language": "fr", "query": "maisons à plus de 300000 euros, les moins chères d'abord",
     "ast": {"type": "query", "filter": {"and": [{"field": "kind", "op": "equals", "value": "house"},
                                                 {"field": "price", "op": "above", "value": 300000}]},
             "sort": [{"field": "price", "order": "asc"}]}},
    {"language": "en", "query": "average price per city for 3 to 5 rooms",
     "ast": {"type": "query", "filter": {"field": "rooms", "op": "in_range", "value": [3, 5]},
             "aggregate": {"function": "avg", "field": "price"}, "group_by": ["city"]}},
    {"language": "fr", "query": "supprime toutes les annonces de Lyon",
     "ast": {"type": "refusal", "reason": "the DSL only reads listings",
             "suggestion": "list the listings in Lyon"}},
]
CANNED_VERDICT = {"accept": False, "reason": "the city filter is missing",
                  "canonical_ast": CANNED_PAIRS[0]["ast"]}


def real_schema_row() -> dict[str, Any]:
    """A d_02-shaped row whose schema is built from data/operator_catalog.json + base_schema_template.json."""
    catalog = dsl.load_catalog(REPO / "data" / "operator_catalog.json")
    template = dsl.load_template(REPO / "data" / "base_schema_template.json")
    schema = dsl.build_schema(template, "real estate", "Homes for sale.", FIELDS, OPERATORS, catalog)
    return {"id": "schema-real-estate", "domain": "real estate", "schema": schema, "operators": OPERATORS}


def canned_responder(request: ChatRequest) -> Any:
    """Valid teacher replies for real_schema_row(), chosen by the request's task."""
    return {"spec": CANNED_SPEC, "pairs": {"pairs": CANNED_PAIRS}, "verdict": CANNED_VERDICT}[request.task]


class LLMLikeResponder:
    """Replies like an LLM, for any schema: a new spec on every call (a new description, so a new schema in
    stage 2), and for a pairs request as many fresh, valid pairs as it asks for, with the refusals it asks for
    (``{"type": "query", "limit": k}`` fits every schema build_schemas.py makes)."""

    def __init__(self) -> None:
        self.counter = itertools.count(1)

    def __call__(self, request: ChatRequest) -> Any:
        if request.task == "spec":
            n = next(self.counter)
            return {"description": f"Records, take {n}.", "fields": FIELDS,
                    "example_queries": [f"example {n}.{i}" for i in range(4)]}
        text = request.messages[-1]["content"]
        size, refusals = map(int, re.search(r"exactly (\d+) pairs.*?(\d+) of them refusals", text).groups())
        pairs = []
        for i in range(size):
            n = next(self.counter)
            ast = ({"type": "refusal", "reason": "no such field", "suggestion": "list the records"}
                   if i < refusals else {"type": "query", "limit": 1 + n % 500})
            pairs.append({"language": "en" if i % 2 else "fr", "query": f"request number {n}", "ast": ast})
        return {"pairs": pairs}
