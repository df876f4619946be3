"""Failure-focused boost: new teacher rows aimed at what the SFT student got wrong on the `pref` rows, and the
settings of the short SFT run that goes on from the selected checkpoint on the train rows plus those rows.

DPO learns from the student's own wrong outputs; the boost instead shows the student more right answers of the
kind it failed. From the pref evaluation (``failures.failure_detail``) each schema gets its failure targets,
weighted by how many failed rows name them: the fields, operators and clauses of the failed rows' gold ASTs (for
a user's schema of any other shape: their leaf paths and enum values), and "refusal" for a refusal the student
missed. The teacher then writes rows for those schemas only (seen schemas:
pref rows never come from unseen ones), with its own seed so they are new: the built-in teacher samples
``candidates_per_row`` requests per row wanted and keeps the ones that hit the most failure weight; an LLM teacher
is told the failures in its prompt (``focus``) and filtered the same way. Every row is validated against its
schema like a d_03 row, and a request already in the dataset (any split, test rows included) is never kept.
Torch-free.
"""
from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..canonical import canonical
from ..corpus import corpus_record, corpus_schema_format
from ..dataset import derive_seed, pair_to_row, teacher_label
from ..errors import UserError
from ..failures import CLAUSES, conditions, failure_detail
from ..fingerprint import file_digest
from ..jsonl import meta_path, read_json, read_jsonl, stable_id, write_jsonl_atomic
from ..provenance import write_meta
from ..records import REFUSAL, TRAINED_SPLITS, is_clarification, is_refusal, request_key
from ..settings import BoostSettings, check_ranges
from ..teachers import Teacher, TeacherError, map_bounded

SOURCE = "boost"  # the "source" of a boost row in the boost corpus
REFUSAL_TARGET = "refusal"
CLARIFICATION_TARGET = "clarification"
FOCUS_SHOWN = 8  # failure targets named in an LLM teacher's prompt, most frequent first
PROJECT_KEYS = frozenset({"filter", "select", "aggregate", "group_by", "sort", "limit"})  # the DSL's Query keys
WORD_CHARS = 24  # a string value this short and word-like is a target of its own (an enum value)


def ast_targets(ast: Any) -> set[str]:
    """What an AST exercises, as target names: "refusal"; for the project's DSL "field:<name>", "op:<operator>"
    for each condition of its filter and "clause:<name>" for each top-level clause it sets (select, aggregate,
    group_by, sort, limit), in canonical form; for any other schema's AST (generic_targets) its leaf paths."""
    if is_refusal(ast):
        return {REFUSAL_TARGET}
    if is_clarification(ast):
        return {CLARIFICATION_TARGET}
    if not isinstance(ast, dict):
        return set()
    if ast.get("type") != "query" and not PROJECT_KEYS & ast.keys():  # a user's schema of another shape
        return generic_targets(ast)
    tree = canonical(ast)
    leaves = conditions(tree.get("filter"))
    return ({f"field:{leaf['field']}" for leaf in leaves} | {f"op:{leaf['op']}" for leaf in leaves}
            | {f"clause:{name}" for name in CLAUSES if tree.get(name) not in (None, [], {})})


def generic_targets(value: Any, path: str = "") -> set[str]:
    """The targets of an AST of any shape: "key:<path>" for each leaf (array items as path[]), and
    "value:<path>=<word>" for each short word-like string (an enum value, a discriminating constant)."""
    if isinstance(value, dict):
        return {t for key, child in value.items() for t in generic_targets(child, f"{path}.{key}" if path else key)}
    if isinstance(value, list):
        return {t for child in value for t in generic_targets(child, f"{path}[]")}
    targets = {f"key:{path}"}
    if isinstance(value, str) and len(value) <= WORD_CHARS and value.replace("_", "").replace("-", "").isalnum():
        targets.add(f"value:{path}={value}")
    return targets


def failure_targets(records: Sequence[Mapping[str, Any]]) -> dict[str, Counter[str]]:
    """schema_id -> Counter of targets over its failed rows: "refusal" for a missed refusal, else what the gold
    AST exercises (the student got a row using these wrong). Passing rows count nothing."""
    by_schema: dict[str, Counter[str]] = {}
    for record in records:
        detail = failure_detail(record)
        if detail is None:
            continue
        wanted = ({REFUSAL_TARGET} if detail["cause"] == "missed refusal"
                  else {CLARIFICATION_TARGET} if detail["cause"] == "missed clarification"
                  else ast_targets(record.get("gold_ast")))
        by_schema.setdefault(str(record.get("schema_id")), Counter()).update(wanted | {"failed"})
    return by_schema


def describe_focus(targets: Counter[str]) -> str:
    """The failures in words, for an LLM teacher's prompt."""
    named = [(name, n) for name, n in targets.most_common() if name != "failed"][:FOCUS_SHOWN]
    parts = []
    for name, n in named:
        if name == REFUSAL_TARGET:
            parts.append(f"requests this schema cannot express, answered with a refusal ({n})")
        elif name == CLARIFICATION_TARGET:
            parts.append(f"ambiguous or incomplete requests, answered with a clarification ({n})")
        else:
            kind, _, value = name.partition(":")
            path, _, word = value.partition("=")
            parts.append({"field": f"the field {value}", "op": f"the operator {value}", "clause": f"the {value} clause",
                          "key": f"the property {value}", "value": f"the value {word} of {path}"}[kind] + f" ({n})")
    return (f"The student model got {targets['failed']} requests on this schema wrong. Write requests that use "
            f"what it got wrong (failures in brackets): " + "; ".join(parts) + ".")


def hit_weight(ast: Any, targets: Counter[str]) -> int:
    """How much failure weight a row's AST addresses (0: aimed at no failure)."""
    return sum(targets[name] for name in ast_targets(ast) if name != "failed")


def rows_wanted(targets: Mapping[str, Counter[str]], rows_per_failure: int, max_rows: int | None) -> dict[str, int]:
    """schema_id -> new rows to write: rows_per_failure per failed row, scaled down (largest first) to max_rows."""
    wanted = {schema_id: rows_per_failure * counter["failed"] for schema_id, counter in targets.items()}
    total = sum(wanted.values())
    if max_rows is None or total <= max_rows:
        return wanted
    scaled = {schema_id: n * max_rows // total for schema_id, n in wanted.items()}
    for schema_id in sorted(wanted, key=lambda s: -wanted[s])[:max_rows - sum(scaled.values())]:
        scaled[schema_id] += 1
    return scaled


async def rows_for_schema(teacher: Teacher, schema_row: dict[str, Any], spec: Mapping[str, Any],
                          targets: Counter[str], wanted: int, *, candidates_per_row: int, seed: int,
                          taken: set[str]) -> tuple[list[dict[str, Any]], Counter[str]]:
    """(up to `wanted` validated d_03 rows aimed at the schema's failures, counts of what was dropped)."""
    deterministic = getattr(teacher, "deterministic", False)
    asked = wanted * (candidates_per_row if deterministic else 2)
    pairs = await teacher.generate_pairs(schema_row, dict(spec), asked, derive_seed(seed, schema_row["id"], SOURCE),
                                         focus=describe_focus(targets))
    label, dropped = teacher_label(teacher), Counter[str]()
    scored: list[tuple[int, int, dict[str, Any]]] = []
    seen: set[str] = set()
    for order, pair in enumerate(pairs):
        row = pair_to_row(pair, schema_row, label)
        key = request_key(row["query"], row.get("context"))
        if not row["is_valid"]:
            dropped["invalid"] += 1
        elif key in taken or key in seen:
            dropped["already_in_dataset"] += 1
        elif (weight := hit_weight(row["ast"], targets)) == 0:
            dropped["aimed_at_no_failure"] += 1
        else:
            seen.add(key)
            row["boost_targets"] = sorted(ast_targets(row["ast"]) & set(targets))
            scored.append((-weight, order, row))
    scored.sort(key=lambda item: item[:2])
    dropped["over_wanted"] += max(0, len(scored) - wanted)
    return [row for _, _, row in scored[:wanted]], dropped


def replayed(corpus_rows: list[dict[str, Any]], new_rows: int, ratio: float | None, seed: int) -> list[dict[str, Any]]:
    """The corpus rows the boost corpus keeps: every row of another split, and of the train rows
    round(ratio * new_rows), a seeded sample in corpus order (ratio None: all of them)."""
    train = [r for r in corpus_rows if r.get("split") in TRAINED_SPLITS]
    if ratio is None or round(ratio * new_rows) >= len(train):
        return list(corpus_rows)
    keep = {str(r["id"]) for r in sorted(train, key=lambda r: stable_id(seed, "replay", r["id"]))[:round(ratio * new_rows)]}
    return [r for r in corpus_rows if r.get("split") not in TRAINED_SPLITS or str(r["id"]) in keep]


def boost_settings(cfg: Mapping[str, Any]) -> None:
    check_ranges(BoostSettings, cfg, "boost.{key} must be {rule}, got {value}; fix the config")


def build_boost_rows(*, teacher: Teacher, pref_results: str | Path, corpus: str | Path, dataset: str | Path,
                     schemas: str | Path, specs: str | Path, cfg: Mapping[str, Any], resume: bool = True,
                     log: Any = print) -> dict[str, Any]:
    """Write boost.rows_out (the new d_03-shaped rows) and boost.corpus_out (them as `train` rows, with the
    replayed train rows and the corpus's other rows); returns the summary recorded in their .meta.json. A rerun keeps both while the pref results, the
    settings and the teacher are those they were made from (resume)."""
    boost_settings(cfg)
    records = read_jsonl(pref_results)
    if not records:
        raise UserError(f"{pref_results} holds no evaluated rows; run the pref evaluation first (runAlignment.sh)")
    corpus_rows = read_jsonl(corpus)
    settings = {key: cfg[key] for key in ("rows_per_failure", "max_rows", "candidates_per_row", "replay_ratio",
                                          "seed")}
    digest = stable_id(file_digest(pref_results), file_digest(corpus), settings, teacher.describe())
    rows_out, corpus_out = Path(cfg["rows_out"]), Path(cfg["corpus_out"])
    if resume and corpus_out.is_file() and meta_path(rows_out).is_file():
        summary = read_json(meta_path(rows_out)).get("summary", {})
        if summary.get("inputs_digest") == digest:
            log(f"boost rows: kept {rows_out} ({summary.get('rows')} rows, made from the same pref evaluation, "
                f"corpus, settings and teacher)")
            return summary
    seen_schemas = {str(r["schema_id"]) for r in corpus_rows if r.get("schema_seen", True)}
    targets = {s: c for s, c in failure_targets(records).items() if s in seen_schemas}
    wanted = rows_wanted(targets, int(cfg["rows_per_failure"]), cfg["max_rows"])
    schema_rows = {str(r["id"]): r for r in read_jsonl(schemas)}
    spec_rows = {r.get("id"): r for r in read_jsonl(specs, missing_ok=True)}
    taken = {request_key(str(r.get("query", "")), r.get("context")) for r in read_jsonl(dataset, missing_ok=True)}
    taken |= {request_key(str(r.get("query", "")), r.get("context")) for r in corpus_rows}
    jobs = [s for s in sorted(wanted) if wanted[s] > 0 and s in schema_rows]

    async def one(schema_id: str) -> tuple[list[dict[str, Any]], Counter[str]]:
        row = schema_rows[schema_id]
        spec = spec_rows.get(row.get("spec_id")) or {"domain": row.get("domain", "")}
        return await rows_for_schema(teacher, row, spec, targets[schema_id], wanted[schema_id],
                                     candidates_per_row=int(cfg["candidates_per_row"]), seed=int(cfg["seed"]),
                                     taken=taken)

    async def run() -> list[tuple[list[dict[str, Any]], Counter[str]]]:
        try:
            return await map_bounded(one, jobs, teacher.concurrency)
        finally:
            await teacher.aclose()

    try:
        results = asyncio.run(run())
    except TeacherError as exc:
        raise UserError(f"boost rows stopped (nothing written; run again): {exc}") from None
    new_rows = [row for rows, _ in results for row in rows]
    dropped = sum((counts for _, counts in results), Counter[str]())
    schema_format = corpus_schema_format(corpus) or "compact"
    boost_corpus = [{**corpus_record(row, schema_rows[row["schema_id"]], "train", True, schema_format),
                     "source": SOURCE} for row in new_rows]
    kept = replayed(corpus_rows, len(boost_corpus), cfg["replay_ratio"], int(cfg["seed"]))
    write_jsonl_atomic(rows_out, new_rows)
    write_jsonl_atomic(corpus_out, kept + boost_corpus)
    summary = {"inputs_digest": digest, "rows": len(new_rows), "wanted": sum(wanted.values()),
               "refusals": sum(1 for r in new_rows if r["kind"] == REFUSAL), "schemas": len(jobs),
               "failed_pref_rows": sum(c["failed"] for c in targets.values()), "pref_rows": len(records),
               "dropped": dict(dropped), "schema_format": schema_format,
               "corpus_rows": len(kept) + len(boost_corpus),
               "replayed_train_rows": sum(1 for r in kept if r.get("split") in TRAINED_SPLITS),
               "targets": {s: dict(c.most_common()) for s, c in sorted(targets.items())}}
    provenance_settings = {**settings, "pref_results": str(pref_results), "corpus": str(corpus)}
    for path in (rows_out, corpus_out):
        write_meta(path, "build_boost_rows", provenance_settings, summary, teacher)
    log(f"boost rows: {len(new_rows)} of {summary['wanted']} wanted for {len(jobs)} schemas "
        f"({summary['failed_pref_rows']} failed pref rows); dropped {dict(dropped)}")
    return summary


def boost_training_settings(training: Mapping[str, Any], boost: Mapping[str, Any], start: str) -> dict[str, Any]:
    """The training section as the boost run needs it: the boost corpus, output dir, schedule and start."""
    boost_settings(boost)
    steps = int(boost["max_steps"])
    settings = dict(training, training_corpus=boost["corpus_out"], output_dir=boost["output_dir"], start_from=start,
                    max_steps=steps, max_minutes=float(boost["max_minutes"]), warmup_steps=int(boost["warmup_steps"]),
                    trim_vocabulary=0, early_stop_patience=0,
                    # the sweep then scores a middle checkpoint beside the last
                    save_steps=max(1, steps // 2), eval_steps=max(1, steps // 2))
    if boost["learning_rate"] is not None:
        factor = float(boost["learning_rate"]) / float(training["learning_rate"])
        settings["learning_rate"] = float(boost["learning_rate"])
        settings["muon_learning_rate"] = float(training["muon_learning_rate"]) * factor
    return settings
