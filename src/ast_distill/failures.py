"""Why a wrong answer is wrong, down to the part of the AST: the failure profile of a set of evaluated rows.

``scoring.classify_failure`` gives each failed row one cause (not parsed, schema invalid, wrong meaning,
wrongly refused, missed refusal). For a valid query of the wrong meaning, ``differing_parts`` says which parts
of the AST differ from the gold, compared in canonical form (so order and spelling never count): the filter's
fields, an operator or a value on a field both name, the and/or/not shape of the filter, and the top-level
clauses (select, aggregate, group_by, sort, limit). ``failure_profile`` sums a set of rows by cause, by part
and by schema, with the fields and operators that failing rows involve: what a report shows and what a teacher
asked for more rows aimed at the failures is told. Torch-free.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .canonical import canonical
from .records import QUERY, kind_of
from .scoring import classify_failure

# The parts of an AST a wrong answer can differ in, in the order reports list them.
AST_PARTS: tuple[str, ...] = ("field", "operator", "value", "logic", "select", "aggregate", "group_by", "sort",
                              "limit")
CLAUSES = ("select", "aggregate", "group_by", "sort", "limit")
TRUNCATED = "truncated"  # a cause of its own: the answer ran out of tokens, not knowledge


def conditions(node: Any) -> list[dict[str, Any]]:
    """The field/op/value leaves of a (canonical) filter, depth first."""
    if isinstance(node, dict):
        if "field" in node and "op" in node:
            return [node]
        return [leaf for child in node.values() for leaf in conditions(child)]
    if isinstance(node, list):
        return [leaf for child in node for leaf in conditions(child)]
    return []


def shape(node: Any) -> Any:
    """The filter with each leaf replaced by its field: the and/or/not structure alone."""
    if isinstance(node, dict):
        if "field" in node and "op" in node:
            return node["field"]
        return {key: shape(child) for key, child in node.items()}
    if isinstance(node, list):
        return sorted((shape(child) for child in node), key=repr)
    return node


def differing_parts(gold: Mapping[str, Any], student: Mapping[str, Any]) -> list[str]:
    """The AST_PARTS in which two query ASTs differ in meaning (empty when they mean the same)."""
    a, b = canonical(dict(gold)), canonical(dict(student))
    parts: set[str] = set()
    gold_leaves, student_leaves = conditions(a.get("filter")), conditions(b.get("filter"))
    gold_fields = Counter(leaf["field"] for leaf in gold_leaves)
    if gold_fields != Counter(leaf["field"] for leaf in student_leaves):
        parts.add("field")
    by_field = {leaf["field"]: leaf for leaf in student_leaves}
    for leaf in gold_leaves:
        other = by_field.get(leaf["field"])
        if other is None:
            continue
        if other["op"] != leaf["op"]:
            parts.add("operator")
        elif other.get("value") != leaf.get("value"):
            parts.add("value")
    if "field" not in parts and shape(a.get("filter")) != shape(b.get("filter")):
        parts.add("logic")
    parts.update(clause for clause in CLAUSES if a.get(clause) != b.get(clause))
    return [part for part in AST_PARTS if part in parts]


def failure_detail(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """None for a row that passed; else {cause, parts, fields, operators}: the cause (classify_failure's, or
    "truncated" for an output the token budget cut), the differing AST parts of a valid wrong query, and the
    gold's fields and operators (what a teacher should write more rows about)."""
    cause = classify_failure(record)
    if cause is None:
        return None
    if record.get("truncated") and not record.get("parsed"):
        cause = TRUNCATED
    gold, student = record.get("gold_ast"), record.get("student_ast")
    is_query = isinstance(gold, dict) and kind_of(gold) == QUERY
    parts = (differing_parts(gold, student) if cause == "wrong meaning" and is_query and isinstance(student, dict)
             else [])
    leaves = conditions(canonical(gold).get("filter")) if is_query else []
    return {"cause": cause, "parts": parts, "fields": sorted({str(leaf["field"]) for leaf in leaves}),
            "operators": sorted({str(leaf["op"]) for leaf in leaves})}


def count(values: Iterable[str]) -> dict[str, int]:
    """A Counter as a plain dict, most common first."""
    return dict(Counter(values).most_common())


def failure_profile(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """{rows, failed, by_cause, by_part, by_schema: {schema_id: {rows, failed, by_cause, by_part, fields,
    operators}}}: the failed rows of ``records`` summed up."""
    rows_of: dict[str, int] = defaultdict(int)
    failed_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        schema_id = str(record.get("schema_id"))
        rows_of[schema_id] += 1
        detail = failure_detail(record)
        if detail is not None:
            failed_of[schema_id].append(detail)

    def summed(details: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return {"failed": len(details), "by_cause": count(d["cause"] for d in details),
                "by_part": count(p for d in details for p in d["parts"]),
                "fields": count(f for d in details for f in d["fields"]),
                "operators": count(o for d in details for o in d["operators"])}

    by_schema = {schema_id: {"rows": rows_of[schema_id], **summed(failed_of[schema_id])}
                 for schema_id in sorted(rows_of)}
    overall = summed([d for details in failed_of.values() for d in details])
    return {"rows": len(records), **overall,
            "by_schema": dict(sorted(by_schema.items(), key=lambda item: -item[1]["failed"]))}
