"""Dataset stages 1-3: domain specs (d_01), final schemas (d_02), (query, AST) rows (d_03).

Stage 4 (the training corpus and the test set) lives in corpus.py. Every stage writes
``<output>.meta.json`` beside its output (settings, versions, git commit: see provenance.py).

Resume contract of stage 3 (generate_dataset): rows are appended to the output (or --checkpoint-path) with
fsync every ``checkpoint_every`` rows; a row's id is stable_id(schema_id, language, query); each schema's
teacher seed derives from (seed, schema_id). A run killed at any point and run again therefore ends with
exactly the rows of an uninterrupted run: the deterministic built-in teacher regenerates a partly written
schema and only the missing ids are appended; an LLM teacher is asked only for the rows still missing.
Stages 1 and 2 keep that contract across reruns: stage 1 keeps each spec made with the same settings
(spec_fingerprint) and stage 2 is deterministic, so the schema ids that d_03's rows refer to survive.
"""
from __future__ import annotations

import asyncio
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tqdm import tqdm

from . import dsl, user_dsl
from .errors import UserError
from .fingerprint import json_digest
from .jsonl import JsonlAppender, read_jsonl, stable_id, write_jsonl_atomic
from .provenance import write_meta
from .records import CLARIFICATION, LANGUAGES, REFUSAL, check_context, context_text, kind_of, request_key
from .settings import DatasetGenerationSettings, check_ranges
from .teachers.base import GeneratedPair, Teacher, TeacherError, map_bounded

# The stages' size arguments are dataset_generation keys: their ranges are declared there, named by key here.
RANGE_MESSAGE = "{key} must be {rule}, got {value}"


# --------------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------------

def derive_seed(*parts: Any) -> int:
    """A 31-bit seed from any parts (stable across runs and machines)."""
    return int(stable_id(*parts), 16) % (2 ** 31)


def read_nonempty_jsonl(path: str | Path, what: str, hint: str) -> list[dict[str, Any]]:
    records = read_jsonl(path)
    if not records:
        raise UserError(f"{path} holds no {what}; {hint}")
    return records


def teacher_label(teacher: Teacher) -> str:
    return teacher.name if not teacher.model else f"{teacher.name}:{teacher.model}"


def _retry_count(retries: int) -> float:
    return float("inf") if retries < 0 else retries


# --------------------------------------------------------------------------------------------------------
# Stage 1: domain specs
# --------------------------------------------------------------------------------------------------------

def read_domain_prompts(path: str | Path) -> list[dict[str, Any]]:
    """Domain prompts: one JSON object a line with id, domain, description (and a fields pool)."""
    prompts = read_nonempty_jsonl(path, "domain prompts",
                                  "add one JSON object a line: {\"id\", \"domain\", \"description\", \"fields\": [...]}")
    seen: set[str] = set()
    for index, row in enumerate(prompts, start=1):
        for key in ("id", "domain", "description"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise UserError(f"{path}: prompt #{index} needs a non-empty string '{key}'")
        if row["id"] in seen:
            raise UserError(f"{path}: prompt id '{row['id']}' appears twice; ids must be unique")
        seen.add(row["id"])
        if "fields" in row:
            dsl.check_fields(row["fields"], f"{path}: prompt '{row['id']}'")
    return prompts


def spec_id(prompt: dict[str, Any], variant: int) -> str:
    return stable_id(prompt["id"], variant)


def spec_fingerprint(teacher: Teacher, prompt: dict[str, Any], examples_per_schema: int, seed: int) -> str:
    """What a d_01 record was made from: teacher backend and model, seed, examples_per_schema and the text
    the teacher was asked with. A rerun keeps a record whose id and fingerprint match, without a call."""
    return json_digest([teacher.name, teacher.model, seed, examples_per_schema,
                        teacher.spec_prompt(prompt, examples_per_schema)])


def _spec_record(prompt: dict[str, Any], variant: int, body: dict[str, Any], teacher: Teacher,
                 fingerprint: str) -> dict[str, Any]:
    record: dict[str, Any] = {"id": spec_id(prompt, variant), "prompt_id": prompt["id"], "variant": variant}
    record.update({k: v for k, v in body.items() if k not in ("id", "prompt_id", "variant")})
    record["domain"] = prompt["domain"]  # held-out splits group variants by the prompt's domain name
    record.setdefault("description", prompt["description"])
    if prompt.get("language_hint") and "language_hint" not in record:
        record["language_hint"] = prompt["language_hint"]
    queries = record.get("example_queries")
    record["example_queries"] = [q for q in queries if isinstance(q, str)] if isinstance(queries, list) else []
    record["teacher"] = teacher_label(teacher)
    record["fingerprint"] = fingerprint
    return record


async def _one_spec(teacher: Teacher, prompt: dict[str, Any], variant: int, examples: int, seed: int,
                    retries: int, fingerprint: str) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None) or (None, why it was skipped). TeacherError propagates: the stage stops."""
    where = f"teacher reply for '{prompt['id']}' variant {variant}"
    attempt, last_error = 0, ""
    while attempt <= _retry_count(retries):
        body = await teacher.domain_spec(prompt, examples, derive_seed(seed, prompt["id"], variant, attempt))
        try:
            if not isinstance(body, dict):
                raise UserError(f"{where}: not a JSON object")
            dsl.check_fields(body.get("fields"), where)
            return _spec_record(prompt, variant, body, teacher, fingerprint), None
        except UserError as exc:
            last_error = str(exc)
        attempt += 1
    return None, last_error


def generate_domain_specs(*, teacher: Teacher, prompts_path: str | Path, examples_per_schema: int,
                          schemas_per_domain: int, max_domains: int | None, seed: int, retries: int,
                          out: str | Path, settings: dict[str, Any], resume: bool = True) -> dict[str, Any]:
    """Stage 1: one spec per (domain prompt, variant); invalid replies are retried, then skipped and counted.

    Resumable by id like stage 3: with ``resume``, a record already in ``out`` with the job's id (prompt,
    variant) and fingerprint (spec_fingerprint: same teacher, seed, examples_per_schema, prompt text) is
    kept without a teacher call. An LLM teacher writes new specs on every call, and new specs make new
    schema ids in stage 2, which would orphan the rows stage 3 already wrote; so only missing (new, earlier
    skipped) or changed specs are asked for. If the teacher fails for good, the specs done so far are written
    (with the earlier records of those not asked yet) before the stage stops, so a rerun goes on from there.
    """
    check_ranges(DatasetGenerationSettings, {"examples_per_schema": examples_per_schema,
                                             "schemas_per_domain": schemas_per_domain}, RANGE_MESSAGE)
    prompts = read_domain_prompts(prompts_path)
    if max_domains is not None and max_domains >= 0:
        prompts = prompts[:max_domains]
    jobs = [(p, v) for p in prompts for v in range(schemas_per_domain)]
    fingerprints = [spec_fingerprint(teacher, p, examples_per_schema, seed) for p, _ in jobs]
    earlier = {row.get("id"): row for row in read_jsonl(out, missing_ok=True)} if resume else {}
    kept = {i: earlier[spec_id(p, v)] for i, (p, v) in enumerate(jobs)
            if earlier.get(spec_id(p, v), {}).get("fingerprint") == fingerprints[i]}
    todo = [i for i in range(len(jobs)) if i not in kept]
    results: dict[int, tuple[dict[str, Any] | None, str | None]] = {}
    bar = tqdm(total=len(todo), unit="spec", desc="domain specs", disable=None)

    async def run() -> None:
        try:
            async def one(index: int) -> tuple[dict[str, Any] | None, str | None]:
                prompt, variant = jobs[index]
                return await _one_spec(teacher, prompt, variant, examples_per_schema, seed, retries,
                                       fingerprints[index])

            def done(index: int, result: tuple[dict[str, Any] | None, str | None]) -> None:
                results[index] = result
                bar.update(1)

            await map_bounded(one, todo, teacher.concurrency, done)
        finally:
            bar.close()
            await teacher.aclose()

    def record(index: int) -> dict[str, Any] | None:
        if index in kept:
            return kept[index]
        if index in results:
            return results[index][0]  # None: skipped as invalid
        return earlier.get(spec_id(*jobs[index]))  # not asked yet (the teacher failed first): keep the old one

    try:
        asyncio.run(run())
    except TeacherError as exc:
        if not resume:
            raise UserError(f"domain specs stopped, {out} is left as it was: {exc}") from None
        records = [r for r in map(record, range(len(jobs))) if r is not None]
        write_jsonl_atomic(out, records)
        write_meta(out, "generate_domain_specs", settings, {"stopped": str(exc), "specs_written": len(records),
                                                            "specs_asked_done": len(results)}, teacher)
        raise UserError(f"domain specs stopped ({len(results)} of {len(todo)} specs asked for are done and kept "
                        f"in {out}; run again to resume): {exc}") from None
    records = [r for r in map(record, range(len(jobs))) if r is not None]
    skipped = [f"{jobs[i][0]['id']}#{jobs[i][1]}: {results[i][1]}" for i in todo if results[i][0] is None]
    write_jsonl_atomic(out, records)
    summary = {"prompts": len(prompts), "specs_written": len(records), "specs_kept": len(kept),
               "specs_asked": len(todo), "skipped_invalid": len(skipped), "skipped": skipped[:20]}
    if teacher.server_stats():
        summary["servers"] = teacher.server_stats()
    write_meta(out, "generate_domain_specs", settings, summary, teacher)
    return summary


# --------------------------------------------------------------------------------------------------------
# Stage 2: final schemas
# --------------------------------------------------------------------------------------------------------

def build_schemas(*, specs_path: str | Path, template_path: str | Path, catalog_path: str | Path,
                  min_operators: int, max_operators: int, seed: int, out: str | Path,
                  settings: dict[str, Any]) -> dict[str, Any]:
    """Stage 2: fill the template for each spec with 4-7 operators under per-schema aliases (a spec derived from a
    user's schema passes that schema through instead: user_dsl.schema_row).

    Nothing to resume: it is pure and deterministic. Operators and aliases are drawn from a Random seeded
    by (seed, spec id) and a schema id is stable_id(spec id, schema), so the same specs (which stage 1
    keeps on a rerun), template, catalog and seed give the same schema ids, and stage 3's rows keep theirs.
    """
    template = dsl.load_template(template_path)
    catalog = dsl.load_catalog(catalog_path)
    check_ranges(DatasetGenerationSettings, {"min_operators": min_operators}, RANGE_MESSAGE)
    if min_operators > max_operators:
        raise UserError(f"min_operators ({min_operators}) must be <= max_operators ({max_operators})")
    specs = read_nonempty_jsonl(specs_path, "domain specs", "run scripts/generate_domain_specs.py first")
    rows = []
    for index, spec in enumerate(specs, start=1):
        where = f"{specs_path}: spec #{index} ({spec.get('id', 'no id')})"
        if not isinstance(spec.get("id"), str) or not isinstance(spec.get("domain"), str):
            raise UserError(f"{where}: needs string 'id' and 'domain'")
        if user_dsl.is_user_spec(spec):  # a user's schema: passed through, wrapped so a refusal is valid
            rows.append(user_dsl.schema_row(spec, where))
            continue
        fields = dsl.check_fields(spec.get("fields"), where)
        operators = dsl.choose_operators(catalog, random.Random(derive_seed(seed, spec["id"])), min_operators,
                                         max_operators)
        schema = dsl.build_schema(template, spec["domain"], str(spec.get("description", "")), fields, operators,
                                  catalog)
        dsl.check_json_schema(schema, where)
        rows.append({"id": stable_id(spec["id"], schema), "domain": spec["domain"], "spec_id": spec["id"],
                     "schema": schema, "operators": operators, "fields": fields})
    write_jsonl_atomic(out, rows)
    op_counts = Counter(len(r["operators"]) for r in rows)
    summary = {"schemas": len(rows), "domains": len({r["domain"] for r in rows}),
               "operators_per_schema": dict(sorted(op_counts.items()))}
    write_meta(out, "build_schemas", settings, summary)
    return summary


# --------------------------------------------------------------------------------------------------------
# Stage 3: (query, AST) rows
# --------------------------------------------------------------------------------------------------------

def row_id(schema_id: str, language: str, query: str, context: Any = None) -> str:
    """A row's id: its schema, language and words, and its context when it has one (the same words with and
    without a context are two rows)."""
    text = context_text(context)
    return stable_id(schema_id, language, query, text) if text else stable_id(schema_id, language, query)


def _clean_text(pair: GeneratedPair) -> tuple[str, str]:
    query = pair.query.strip() if isinstance(pair.query, str) else ""
    return query, str(pair.language).strip().lower()


def pair_to_row(pair: GeneratedPair, schema_row: dict[str, Any], teacher: str) -> dict[str, Any]:
    """A d_03 row; the AST is validated here, never trusted."""
    query, language = _clean_text(pair)
    ast = pair.ast
    error = dsl.validation_error(schema_row["schema"], ast)
    if not query:
        error = "empty query"
    elif language not in LANGUAGES:
        error = f"language {pair.language!r} is not one of {LANGUAGES}"
    elif (problem := check_context(pair.context, "context")) is not None:
        error = problem
    context = pair.context if isinstance(pair.context, dict) and pair.context else None
    row = {"id": row_id(schema_row["id"], language, query, context), "schema_id": schema_row["id"],
           "domain": schema_row.get("domain"), "language": language, "query": query, "ast": ast, "kind": kind_of(ast),
           "is_valid": error is None, "validation_error": error, "teacher": teacher}
    return {**row, "context": context} if context else row


def _check_schema_rows(rows: list[dict[str, Any]], path: str | Path) -> None:
    seen: set[str] = set()
    for index, row in enumerate(rows, start=1):
        if not isinstance(row.get("id"), str) or not isinstance(row.get("schema"), dict):
            raise UserError(f"{path}: schema row #{index} needs a string 'id' and a 'schema' object")
        if row["id"] in seen:
            raise UserError(f"{path}: schema id '{row['id']}' appears twice")
        seen.add(row["id"])


class _DatasetWriter:
    """Appends rows with fsync every `every` rows; counts what it saw."""

    def __init__(self, path: Path, fresh: bool, every: int, bar: tqdm):
        self.appender = JsonlAppender(path, fresh=fresh)
        self.every, self.bar = max(1, every), bar
        self.pending = 0
        self.duplicates = 0
        self.generated = 0
        self.schemas_done = 0

    def add(self, rows: list[dict[str, Any]], duplicates: int, generated: int) -> None:
        for row in rows:
            self.appender.write(row)
            self.pending += 1
            if self.pending >= self.every:
                self.appender.flush()
                self.pending = 0
        self.duplicates += duplicates
        self.generated += generated
        self.schemas_done += 1
        self.bar.update(len(rows))

    def close(self) -> None:
        self.appender.close()


async def _rows_for_schema(teacher: Teacher, schema_row: dict[str, Any], spec: dict[str, Any], target: int,
                           seed: int, existing: dict[str, dict[str, str]]) -> tuple[list[dict[str, Any]], int, int]:
    """(new rows, duplicates dropped, pairs generated) for one schema, given the rows already written
    (id -> records.request_key)."""
    have = existing.get(schema_row["id"], {})
    have_queries = set(have.values())
    missing = target - len(have)
    if missing <= 0:
        return [], 0, 0
    # A deterministic teacher regenerates the whole schema (same seed, same pairs); an LLM is asked only for
    # what is missing, so a resumed run neither duplicates nor re-pays for finished rows.
    request = target if getattr(teacher, "deterministic", False) else missing
    pairs = await teacher.generate_pairs(schema_row, spec, request, derive_seed(seed, schema_row["id"]))
    label = teacher_label(teacher)
    rows, queries, duplicates = [], set(), 0
    for pair in pairs:
        query, language = _clean_text(pair)
        context = pair.context if isinstance(pair.context, dict) else None
        key = request_key(query, context)
        if key in queries:
            duplicates += 1
            continue
        queries.add(key)
        if row_id(schema_row["id"], language, query, context) in have:
            continue  # written by an earlier run (a deterministic teacher regenerates it): nothing to do
        if key in have_queries:
            duplicates += 1  # an LLM repeating a request an earlier run already wrote
            continue
        rows.append(pair_to_row(pair, schema_row, label))
        if len(rows) == missing:
            break
    return rows, duplicates, len(pairs)


def dataset_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts over a whole d_03 file (what a resumed run ends with, not only this run's share)."""
    per_schema: dict[str, set[str]] = {}
    for row in rows:
        per_schema.setdefault(row.get("schema_id"), set()).add(request_key(str(row.get("query", "")), row.get("context")))
    distinct = sum(len(q) for q in per_schema.values())
    languages = Counter(row.get("language") for row in rows)
    return {"rows": len(rows), "valid": sum(1 for r in rows if r.get("is_valid")),
            "invalid": sum(1 for r in rows if not r.get("is_valid")),
            "refusals": sum(1 for r in rows if r.get("kind") == REFUSAL),
            "clarifications": sum(1 for r in rows if r.get("kind") == CLARIFICATION),
            "with_context": sum(1 for r in rows if r.get("context")),
            "en": languages.get("en", 0), "fr": languages.get("fr", 0), "schemas": len(per_schema),
            "distinct_query_ratio": round(distinct / len(rows), 4) if rows else 0.0}


def set_aside_path(out: str | Path) -> Path:
    """Where stage 3 moves rows whose schema is gone from d_02: <d_03>.stale.jsonl."""
    return Path(out).with_suffix(".stale.jsonl")


def generate_dataset(*, teacher: Teacher, schemas_path: str | Path, specs_path: str | Path,
                     samples_per_schema: int, seed: int, out: str | Path, checkpoint_path: str | Path | None,
                     checkpoint_every: int, resume: bool, concurrency: int, settings: dict[str, Any],
                     samples_per_user_schema: int | None = None) -> dict[str, Any]:
    """Stage 3: teacher pairs per schema (`samples_per_user_schema` for a user's schema), validated, deduplicated,
    appended durably; resumable by id."""
    check_ranges(DatasetGenerationSettings, {"samples_per_schema": samples_per_schema,
                                             "samples_per_user_schema": samples_per_user_schema}, RANGE_MESSAGE)

    def wanted(row: dict[str, Any]) -> int:
        return samples_per_user_schema if row.get("user_schema") and samples_per_user_schema else samples_per_schema

    schemas = read_nonempty_jsonl(schemas_path, "schemas", "run scripts/build_schemas.py first")
    _check_schema_rows(schemas, schemas_path)
    specs = {row.get("id"): row for row in read_jsonl(specs_path, missing_ok=True)}
    work = Path(checkpoint_path or out)
    previous = read_jsonl(work, missing_ok=True) if resume else []
    known = {row["id"] for row in schemas}
    strays = [row for row in previous if row.get("schema_id") not in known]
    if strays:  # rows of schemas d_02 no longer has (other settings, another schema): no later stage can use them
        aside = set_aside_path(work)
        write_jsonl_atomic(aside, strays)
        previous = [row for row in previous if row.get("schema_id") in known]
        write_jsonl_atomic(work, previous)
        print(f"warning: {work} held {len(strays)} rows of schemas that {schemas_path} does not have (an earlier run "
              f"with other settings or schemas); they are moved to {aside}", file=sys.stderr)
    existing: dict[str, dict[str, str]] = {}
    for row in previous:
        existing.setdefault(row.get("schema_id"), {})[row.get("id")] = request_key(str(row.get("query", "")),
                                                                                   row.get("context"))
    total = sum(map(wanted, schemas))
    bar = tqdm(total=total, initial=min(len(previous), total),
               unit="row", desc="dataset", disable=None)
    writer = _DatasetWriter(work, fresh=not resume, every=checkpoint_every, bar=bar)

    def spec_for(row: dict[str, Any]) -> dict[str, Any]:
        return specs.get(row.get("spec_id")) or {"domain": row.get("domain", ""),
                                                 "description": row["schema"].get("description", "")}

    async def one(row: dict[str, Any]) -> tuple[list[dict[str, Any]], int, int]:
        return await _rows_for_schema(teacher, row, spec_for(row), wanted(row), seed, existing)

    async def run() -> None:
        try:
            await map_bounded(one, schemas, concurrency, lambda _row, result: writer.add(*result))
        finally:
            await teacher.aclose()

    try:
        asyncio.run(run())
    except TeacherError as exc:
        raise UserError(f"dataset generation stopped ({writer.schemas_done} of {len(schemas)} schemas done, "
                        f"rows so far kept in {work}; run again to resume): {exc}") from None
    finally:
        writer.close()
        bar.close()
    final_rows = read_jsonl(work)
    if work != Path(out):
        write_jsonl_atomic(out, final_rows)
    summary = dataset_summary(final_rows)
    summary.update({"resumed_rows": len(previous), "new_rows": len(final_rows) - len(previous),
                    "duplicates_dropped": writer.duplicates, "pairs_generated": writer.generated,
                    "distinct_ratio_this_run": round(1 - writer.duplicates / writer.generated, 4)
                    if writer.generated else None})
    if teacher.server_stats():
        summary["servers"] = teacher.server_stats()
    write_meta(out, "generate_dataset", settings, summary, teacher)
    return summary
