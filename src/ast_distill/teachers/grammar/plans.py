"""Plans of the built-in teacher: what one request asks (a condition tree, select, sort, limit, aggregate),
sampled from a lexicon so that every plan is a valid AST of its schema, and turned into that AST."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from ...records import QUERY
from .lexicon import Lex, catalog_ops_by_type
from .values import sample_value


@dataclass
class Leaf:
    lex: Lex
    op: str  # canonical operator name
    value: Any


Cond = Any  # Leaf | ("and"|"or", [Cond, ...]) | ("not", Cond)


@dataclass
class Plan:
    """What one request asks: everything the AST holds, with canonical operators."""
    cond: Cond | None = None
    select: list[Lex] = field(default_factory=list)
    sort: list[tuple[Lex, str]] = field(default_factory=list)
    limit: int | None = None
    aggregate: tuple[str, Lex | None] | None = None
    group_by: list[Lex] = field(default_factory=list)


def usable_ops(lex: Lex) -> list[str]:
    """Canonical operators this field can use in generated requests (conventions: package docstring)."""
    ops = [op for op in lex.ops if op in dsl_ops_for_type(lex.type)]
    if lex.type == "boolean":
        return [op for op in ops if op == "eq"]
    if lex.type == "date":
        ops = [op for op in ops if not (op == "gt" and "after" in lex.ops) and not (op == "lt" and "before" in lex.ops)]
    if lex.type == "string" and len(lex.examples) < 2:
        ops = [op for op in ops if op not in ("in", "not_in")]
    if lex.type == "enum" and len(lex.values or []) < 2:
        ops = [op for op in ops if op not in ("in", "not_in")]
    return ops


def dsl_ops_for_type(kind: str) -> set[str]:
    return set(catalog_ops_by_type().get(kind, {}))


OP_WEIGHTS = {"eq": 3.0, "ne": 1.0, "gt": 2.0, "gte": 1.5, "lt": 2.0, "lte": 1.5, "between": 1.5, "in": 1.5,
              "not_in": 1.0, "contains": 2.0, "starts_with": 1.2, "ends_with": 1.0, "before": 2.0, "after": 2.0}


class PlanSampler:
    """Samples plans (valid ASTs of the lexicon's schema) and single conditions, drawing from one rng."""

    def __init__(self, rng: random.Random, lexicon: list[Lex]):
        self.rng = rng
        self.lexicon = lexicon
        self.filterable = [lex for lex in lexicon if usable_ops(lex)]

    def leaf(self, exclude: set[str]) -> Leaf | None:
        candidates = [lex for lex in self.filterable if lex.name not in exclude]
        if not candidates:
            return None
        for _ in range(6):
            lex = self.rng.choice(candidates)
            ops = usable_ops(lex)
            op = self.rng.choices(ops, weights=[OP_WEIGHTS.get(o, 1.0) for o in ops])[0]
            value = sample_value(self.rng, lex, op)
            if value is not None:
                exclude.add(lex.name)
                return Leaf(lex, op, value)
        return None

    def cond(self, count: int) -> Cond | None:
        used: set[str] = set()
        leaves = [leaf for leaf in (self.leaf(used) for _ in range(count)) if leaf is not None]
        if not leaves:
            return None
        if len(leaves) == 1:
            return ("not", leaves[0]) if self.rng.random() < 0.1 else leaves[0]
        roll = self.rng.random()
        if len(leaves) == 3 and roll < 0.3:
            return ("and", [leaves[0], ("or", leaves[1:])])
        if roll < 0.7:
            children: list[Cond] = list(leaves)
            if self.rng.random() < 0.12:
                children[-1] = ("not", children[-1])
            return ("and", children)
        return ("or", leaves)

    def plan(self) -> Plan:
        rng = self.rng
        numeric = [lex for lex in self.lexicon if lex.type in ("integer", "number")]
        if rng.random() < 0.18:
            plan = Plan(cond=self.cond(rng.choices((0, 1, 2), weights=(0.35, 0.45, 0.2))[0]))
            function = rng.choice(("count", "count", "sum", "avg", "min", "max")) if numeric else "count"
            target = None
            if function != "count":
                dated = [lex for lex in self.lexicon if lex.type == "date"]
                pool = numeric + (dated if function in ("min", "max") else [])
                target = rng.choice(pool)
            plan.aggregate = (function, target)
            groupable = [lex for lex in self.lexicon if lex.type in ("enum", "boolean", "string")]
            if groupable and rng.random() < 0.4:
                plan.group_by = rng.sample(groupable, 1 if len(groupable) < 2 or rng.random() < 0.85 else 2)
            return plan
        plan = Plan(cond=self.cond(rng.choices((0, 1, 2, 3), weights=(0.12, 0.38, 0.32, 0.18))[0]))
        if rng.random() < 0.3:
            plan.select = rng.sample(self.lexicon, min(len(self.lexicon), rng.choice((1, 2, 2, 3))))
        sortable = [lex for lex in self.lexicon if lex.type != "boolean"]
        if sortable and rng.random() < 0.3:
            keys = rng.sample(sortable, 2 if len(sortable) > 1 and rng.random() < 0.15 else 1)
            plan.sort = [(lex, rng.choice(("asc", "desc"))) for lex in keys]
        if rng.random() < (0.45 if plan.sort else 0.15):
            plan.limit = rng.choice((1, 3, 5, 5, 10, 10, 20, 25, 50, 100))
        if plan.cond is None and not (plan.select or plan.sort or plan.limit):
            plan.limit = rng.choice((5, 10, 20))
        return plan


def cond_ast(node: Cond) -> dict[str, Any]:
    if isinstance(node, Leaf):
        return {"field": node.lex.name, "op": node.lex.ops[node.op], "value": node.value}
    kind, body = node
    if kind == "not":
        return {"not": cond_ast(body)}
    return {kind: [cond_ast(child) for child in body]}


def plan_ast(plan: Plan) -> dict[str, Any]:
    ast: dict[str, Any] = {"type": QUERY}
    if plan.cond is not None:
        ast["filter"] = cond_ast(plan.cond)
    if plan.select:
        ast["select"] = [lex.name for lex in plan.select]
    if plan.aggregate is not None:
        function, lex = plan.aggregate
        ast["aggregate"] = {"function": function} if lex is None else {"function": function, "field": lex.name}
    if plan.group_by:
        ast["group_by"] = [lex.name for lex in plan.group_by]
    if plan.sort:
        ast["sort"] = [{"field": lex.name, "order": order} for lex, order in plan.sort]
    if plan.limit is not None:
        ast["limit"] = plan.limit
    return ast
