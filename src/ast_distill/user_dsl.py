"""A user's own JSON Schema as the pipeline's input (`dataset_generation.user_schemas`).

Stage 1 derives one domain spec (d_01) from each schema file instead of asking a teacher to invent fields:
the domain is the file's name, the description the schema's own (else its title), and the spec carries the
schema's compact outline (schema_outline.py: every property path, type, enum value, bound and format) for whoever
reads d_01. Stage 2 passes each schema through, wrapped by dsl.with_refusal so that a refusal stays a valid
answer; stages 3 to 9 then run unchanged (the built-in teacher switches to its generic mode for such a schema,
teachers/grammar/generic.py). A schema file that changed after stage 1 is caught in stage 2 (its digest).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import dsl
from .errors import UserError
from .fingerprint import json_digest
from .jsonl import stable_id, write_jsonl_atomic
from .provenance import write_meta
from .schema_outline import render_outline

SOURCE = "user schema"  # the `teacher` of a d_01 record derived from a user's schema


def read_user_schema(path: str | Path) -> dict[str, Any]:
    """A user's schema file, checked: JSON, a valid schema of its draft, internal refs, a root admitting a value.
    Each problem is one UserError line naming the file."""
    source = Path(path)
    if not source.is_file():
        raise UserError(f"schema file {source} does not exist; pass --schema with a JSON Schema file")
    try:
        schema = json.loads(source.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"schema file {source} is not JSON ({exc}); fix the file") from None
    dsl.check_json_schema(schema, f"schema file {source}")
    return schema


def domain_name(path: str | Path) -> str:
    """The domain a schema file stands for: its file name without .json (and .schema)."""
    name = Path(path).name
    for suffix in (".json", ".schema"):
        name = name.removesuffix(suffix)
    return name


def spec_from_schema(path: str | Path) -> dict[str, Any]:
    """The d_01 record of one user schema."""
    schema = read_user_schema(path)
    digest = json_digest(schema)
    domain = domain_name(path)
    description = schema.get("description") or schema.get("title") or domain
    return {"id": stable_id(SOURCE, domain, digest), "prompt_id": domain, "variant": 0, "domain": domain,
            "description": str(description), "user_schema": str(path), "outline": render_outline(schema),
            "fields": [], "example_queries": [], "teacher": SOURCE, "fingerprint": digest}


def write_user_specs(schemas: list[str], out: str | Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Stage 1 for user schemas: one spec each, written atomically (pure: nothing to resume)."""
    if not schemas:
        raise UserError("dataset_generation.user_schemas is empty; name at least one schema file, or null")
    records = [spec_from_schema(path) for path in schemas]
    domains = [r["domain"] for r in records]
    if len(set(domains)) != len(domains):
        raise UserError(f"user schemas must have distinct file names (their domains), got {', '.join(domains)}")
    write_jsonl_atomic(out, records)
    summary = {"prompts": len(records), "specs_written": len(records), "specs_kept": 0, "specs_asked": 0,
               "skipped_invalid": 0, "skipped": [], "user_schemas": list(schemas)}
    write_meta(out, "generate_domain_specs", settings, summary)
    return summary


def is_user_spec(spec: dict[str, Any]) -> bool:
    return isinstance(spec.get("user_schema"), str)


def schema_row(spec: dict[str, Any], where: str) -> dict[str, Any]:
    """Stage 2 for a user spec: the d_02 record, its schema wrapped so a refusal is valid."""
    path = spec["user_schema"]
    schema = read_user_schema(path)
    if json_digest(schema) != spec.get("fingerprint"):
        raise UserError(f"{where}: {path} changed since stage 1 read it; run scripts/generate_domain_specs.py again "
                        f"(./runDatasetGeneration.sh does both)")
    wrapped = dsl.with_refusal(schema)
    dsl.check_json_schema(wrapped, where)
    return {"id": stable_id(spec["id"], wrapped), "domain": spec["domain"], "spec_id": spec["id"],
            "schema": wrapped, "operators": {}, "fields": [], "user_schema": path}

