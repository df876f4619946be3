"""Stage 4: d_03 rows -> the training corpus (d_04: train, val, pref) and the test set (d_05).

Honest splits (README, "Honest splits"): whole domains are held out first, with every schema variant of a held-out domain,
so an unseen schema is really unseen; their rows go to d_05 with schema_seen=false. The other rows are split
by request text (a hash of the normalized query and the seed): the same request, written for two variants of
a domain, lands in one split only. Nothing in d_05 is ever in d_04.

Invalid rows (is_valid false) are never SFT, validation, preference or test material. ``include_invalid``
only decides whether they are also listed, as they are, in ``<out>.invalid.jsonl`` for inspection.
"""
from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

from .errors import UserError
from .jsonl import meta_path, read_json, read_jsonl, stable_id, write_jsonl_atomic, write_pretty_copy
from .prompting import SCHEMA_FORMATS, build_completion, build_prompt
from .provenance import write_meta
from .records import CLARIFICATION, CORPUS_SPLITS, REFUSAL, SPLITS, normalize_query
from .settings import DatasetGenerationSettings, check_ranges


def invalid_listing_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".invalid.jsonl")


def _unit_interval(*parts: Any) -> float:
    return int(stable_id(*parts), 16) / 16 ** 16


def check_fractions(heldout: float, val: float, pref: float, test: float) -> None:
    check_ranges(DatasetGenerationSettings, {"heldout_schema_fraction": heldout, "val_fraction": val,
                                             "pref_fraction": pref, "test_fraction": test},
                 "{key} must be {rule}, got {value}")
    if val + pref + test >= 1.0:
        raise UserError(f"val_fraction + pref_fraction + test_fraction = {val + pref + test:g} leaves no "
                        f"training rows; keep the sum below 1")


def heldout_domains(domains: list[str], fraction: float, seed: int) -> list[str]:
    """At least one domain when fraction > 0 (and at least one stays seen)."""
    domains = sorted(set(domains))
    if fraction <= 0 or len(domains) < 2:
        return []
    count = min(len(domains) - 1, max(1, round(fraction * len(domains))))
    return sorted(random.Random(f"{seed}:heldout").sample(domains, count))


def split_by_query(query: str, seed: int, val: float, pref: float, test: float) -> str:
    u = _unit_interval(seed, "split", normalize_query(query))
    if u < test:
        return "test"
    if u < test + val:
        return "val"
    if u < test + val + pref:
        return "pref"
    return "train"


def _cap(rows: list[dict[str, Any]], max_samples: int | None, seed: int) -> list[dict[str, Any]]:
    if max_samples is None or max_samples < 0 or len(rows) <= max_samples:
        return rows
    ranked = sorted(rows, key=lambda r: stable_id(seed, "cap", r["id"]))[:max_samples]
    keep = {r["id"] for r in ranked}
    return [r for r in rows if r["id"] in keep]


def corpus_record(row: dict[str, Any], schema_row: dict[str, Any], split: str, seen: bool,
                  schema_format: str) -> dict[str, Any]:
    return {"id": row["id"], "schema_id": row["schema_id"], "domain": schema_row.get("domain"), "split": split,
            "schema_seen": seen, "language": row.get("language"), "kind": row.get("kind"),
            "prompt": build_prompt(schema_row["schema"], row["query"], schema_format, row.get("context")),
            "completion": build_completion(row["ast"]), "ast": row["ast"], "query": row["query"],
            **({"context": row["context"]} if row.get("context") else {})}


def corpus_schema_format(corpus: str | Path) -> str | None:
    """The schema_format a stage-4 corpus's prompts were rendered with, from its .meta.json; None when the
    corpus has no meta (made by hand, or by a test) or one from before the format was recorded."""
    path = meta_path(corpus)
    if not path.is_file():
        return None
    meta = read_json(path)
    summary = meta.get("summary") if isinstance(meta, dict) else None
    found = summary.get("schema_format") if isinstance(summary, dict) else None
    return str(found) if found is not None else None


def _table(records: list[dict[str, Any]]) -> list[str]:
    lines = [f"  {'split':<14}{'rows':>7}{'en':>7}{'fr':>7}{'refusal':>9}{'clarify':>9}{'schemas':>9}{'domains':>9}"]
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        name = r["split"] if r["split"] != "test" else ("test (seen)" if r["schema_seen"] else "test (unseen)")
        groups.setdefault(name, []).append(r)
    for name in CORPUS_SPLITS + ("test (seen)", "test (unseen)"):
        group = groups.get(name, [])
        langs = Counter(r["language"] for r in group)
        lines.append(f"  {name:<14}{len(group):>7}{langs.get('en', 0):>7}{langs.get('fr', 0):>7}"
                     f"{sum(r['kind'] == REFUSAL for r in group):>9}{sum(r['kind'] == CLARIFICATION for r in group):>9}"
                     f"{len({r['schema_id'] for r in group}):>9}"
                     f"{len({r['domain'] for r in group}):>9}")
    return lines


def build_training_corpus(*, dataset_path: str | Path, schemas_path: str | Path, include_invalid: bool,
                          max_samples: int | None, heldout_schema_fraction: float, val_fraction: float,
                          pref_fraction: float, test_fraction: float, schema_format: str, seed: int,
                          out: str | Path, test_out: str | Path, pretty_dir: str | Path | None,
                          pretty_sources: list[str | Path], settings: dict[str, Any]) -> dict[str, Any]:
    """Stage 4. Returns a summary; prints the split report."""
    check_fractions(heldout_schema_fraction, val_fraction, pref_fraction, test_fraction)
    if schema_format not in SCHEMA_FORMATS:
        raise UserError(f"schema_format must be one of {SCHEMA_FORMATS}, got {schema_format!r}")
    schemas = {r.get("id"): r for r in read_jsonl(schemas_path)}
    rows = read_jsonl(dataset_path)
    if not rows:
        raise UserError(f"{dataset_path} holds no rows; run scripts/generate_dataset.py first")
    for index, row in enumerate(rows, start=1):
        if row.get("schema_id") not in schemas:
            raise UserError(f"{dataset_path}: row #{index} refers to schema '{row.get('schema_id')}', which "
                            f"{schemas_path} does not hold; regenerate the dataset for these schemas")
        for key in ("id", "query"):
            if not isinstance(row.get(key), str):
                raise UserError(f"{dataset_path}: row #{index} needs a string '{key}'")
    valid = _cap([r for r in rows if r.get("is_valid") is True], max_samples, seed)
    invalid = [r for r in rows if r.get("is_valid") is not True]
    held = set(heldout_domains([schemas[r["schema_id"]]["domain"] for r in valid], heldout_schema_fraction, seed))
    corpus, test = [], []
    for row in valid:
        schema_row = schemas[row["schema_id"]]
        if schema_row["domain"] in held:
            test.append(corpus_record(row, schema_row, "test", False, schema_format))
            continue
        split = split_by_query(row["query"], seed, val_fraction, pref_fraction, test_fraction)
        record = corpus_record(row, schema_row, split, True, schema_format)
        (test if split == "test" else corpus).append(record)
    corpus.sort(key=lambda r: (CORPUS_SPLITS.index(r["split"]), r["id"]))
    test.sort(key=lambda r: (not r["schema_seen"], r["id"]))
    write_jsonl_atomic(out, corpus)
    write_jsonl_atomic(test_out, test)
    outputs: dict[str, Any] = {"corpus": str(out), "test_set": str(test_out)}
    if include_invalid:
        write_jsonl_atomic(invalid_listing_path(out), invalid)
        outputs["invalid_listing"] = str(invalid_listing_path(out))
    if pretty_dir is not None:
        copies = [write_pretty_copy(p, pretty_dir) for p in [*pretty_sources, out, test_out] if Path(p).is_file()]
        outputs["pretty"] = [str(p) for p in copies]
    counts = Counter(r["split"] for r in corpus + test)
    # What the prompts were rendered with: training records it, predict renders its prompts the same way.
    summary = {"schema_format": schema_format, "rows_in": len(rows), "valid": len(valid), "invalid": len(invalid),
               "invalid_listed": include_invalid, "heldout_domains": sorted(held),
               "splits": {s: counts.get(s, 0) for s in SPLITS},
               "test_unseen": sum(1 for r in test if not r["schema_seen"]),
               "test_seen": sum(1 for r in test if r["schema_seen"]), "outputs": outputs}
    for path in (out, test_out):
        write_meta(path, "build_training_corpus", settings, summary)
    print("== split report")
    print("\n".join(_table(corpus + test)))
    print(f"  held-out domains ({len(held)}): {', '.join(sorted(held)) or 'none'}")
    print(f"  invalid rows: {len(invalid)} (never used for training or testing"
          + (f"; listed in {invalid_listing_path(out)})" if include_invalid else ")"))
    return summary
