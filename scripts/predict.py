"""Turn requests into JSON ASTs with a trained student: one JSON AST per line on stdout.

The schema file is the DSL's JSON Schema (a d_02 record's "schema", or a d_02 record itself). Output lines are
the ASTs in the order of the requests; an output that is not a JSON object prints as null (with a note on
stderr). An answer below --min-confidence becomes a clarification that offers it as its one option ("Is this what
you mean?") when the schema has the clarification answer (the project's DSLs), else null; a note on stderr says
so. --context gives the requests a context (today's date, usual values) that words like "today" or "my usual"
are resolved from; an --input line may carry its own "context". Constrained decoding (on by default) makes every finished
output valid for the schema. An answer's confidence is the student's probability of it, calibrated on the val rows
when the checkpoint has a calibration.json (the checkpoint sweep writes it into checkpoint-best).

Run as:
  uv run scripts/predict.py --adapter outputs/student_runs/scratch \
      --schema my_schema.json --query "products under 20 euros"
  uv run scripts/predict.py --adapter outputs/student_runs/gemma3-270m/checkpoint-final \
      --schema my_schema.json --input queries.jsonl --no-constrained
  uv run scripts/predict.py --name smart-home --query "dim the kitchen lights to 30"
  uv run scripts/predict.py --name smart-home --query "make it cosy" --min-confidence 0.7 --with-confidence
  uv run scripts/predict.py --name smart-home --query "devices installed today" --context '{"today": "2026-12-01"}'
  uv run scripts/predict.py --backend llamacpp --gguf outputs/student_runs/gemma/export/student-q4_k_m.gguf \
      --schema my_schema.json --query "products under 20 euros"
"""
from __future__ import annotations

import argparse
import json
import sys

from ast_distill import cli, dsl, trainings
from ast_distill.errors import UserError
from ast_distill.jsonl import dumps, read_json, read_jsonl
from ast_distill.predict import BACKENDS, ask_back, predict
from ast_distill.prompting import SCHEMA_FORMATS
from ast_distill.records import check_context


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    # Student and schema
    parser.add_argument("--name", metavar="NAME",
                        help="a named training (python -m ast_distill.trainings list): its student (the one alignment "
                             "kept, else its SFT run) and its user schema, unless --adapter/--schema say otherwise")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--adapter",
                       help="checkpoint dir (a LoRA adapter or a full scratch model, e.g. <run>/checkpoint-final) "
                            "or a training run dir, meaning its selected checkpoint (checkpoint-best from the "
                            "sweep, else checkpoint-final)")
    model.add_argument("--gguf", help="a GGUF file of an export folder (scripts/export_student.py); needs "
                                      "--backend llamacpp")
    parser.add_argument("--backend", choices=BACKENDS, default="transformers",
                        help="transformers + xgrammar (a checkpoint, batched) or llamacpp (a GGUF, llama.cpp's "
                             "JSON-Schema grammar, one request at a time) (default: transformers)")
    parser.add_argument("--schema", help="JSON file with the DSL's JSON Schema (or a d_02 record); needed unless --name "
                                         "names a training of a user schema")
    parser.add_argument("--schema-format", choices=SCHEMA_FORMATS,
                        help="how the prompt renders the schema (default: the one the checkpoint's training corpus "
                             "was built with, as schema_format in its run_config.json; else compact, with a note)")
    # Requests
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--query", action="append", help="one request; repeat for several")
    source.add_argument("--input", help='JSONL file of requests, one {"query": ..., "context": {...}?} per line')
    parser.add_argument("--context", metavar="JSON", help='a JSON object beside every request (an --input line\'s '
                        'own "context" wins), e.g. \'{"today": "2026-12-01", "defaults": {"room": "kitchen"}}\' '
                        '(default: none)')
    # Generation
    parser.add_argument("--constrained", action=argparse.BooleanOptionalAction, default=True,
                        help="decode with the schema as a grammar (default: on)")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="token budget per AST (default: 256)")
    parser.add_argument("--batch-size", type=int, default=8, help="requests generated together (default: 8)")
    parser.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    # Confidence
    parser.add_argument("--min-confidence", type=float, default=None, metavar="P",
                        help="answers whose confidence (0-1) is below P become a clarification offering the "
                             "answer (null when the schema has no clarification), with a note on stderr "
                             "(default: every answer)")
    parser.add_argument("--with-confidence", action="store_true",
                        help='print {"ast": ..., "confidence": ...} per request instead of the AST alone')
    return parser


def load_schema(path: str) -> dict:
    data = read_json(path)
    if isinstance(data, dict) and isinstance(data.get("schema"), dict) and "id" in data:
        return data["schema"]  # a d_02 record
    return data


def parse_context(text: str | None) -> dict | None:
    """--context as a JSON object (None when not given); one clear line when it is not one."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"--context is not JSON ({exc.msg} at character {exc.pos}); pass an object such as "
                        f"'{{\"today\": \"2026-12-01\"}}'") from None
    problem = check_context(value, "--context")
    if problem:
        raise UserError(problem)
    return value or None


def main(args: argparse.Namespace) -> int:
    if args.name:
        training = trainings.describe(args.name)
        args.adapter = args.adapter or (None if args.gguf else training["student"])
        args.schema = args.schema or (training["schemas"][0] if training["schemas"] else None)
    if not (args.adapter or args.gguf):
        raise UserError("no student: pass --adapter DIR, --gguf FILE or --name NAME")
    if not args.schema:
        raise UserError("no schema: pass --schema FILE (or --name NAME of a training made with --schema)")
    schema = load_schema(args.schema)
    dsl.check_json_schema(schema, args.schema)
    context = parse_context(args.context)
    if args.query:
        queries, contexts = list(args.query), [context] * len(args.query)
    else:
        queries, contexts = [], []
        for i, record in enumerate(read_jsonl(args.input), start=1):
            if not isinstance(record.get("query"), str):
                raise UserError(f"{args.input}: record {i} has no string 'query'")
            problem = check_context(record.get("context"), f"{args.input}: record {i}")
            if problem:
                raise UserError(problem)
            queries.append(record["query"])
            contexts.append(record.get("context") or context)
    if not queries:
        raise UserError("no requests: pass --query TEXT or an --input file with at least one line")
    if (args.backend == "llamacpp") != bool(args.gguf):
        raise UserError("--backend llamacpp decodes a --gguf file, and a --gguf file needs --backend llamacpp")
    if args.min_confidence is not None and not 0.0 <= args.min_confidence <= 1.0:
        raise UserError(f"--min-confidence is a probability in [0, 1], got {args.min_confidence}")
    if args.min_confidence is not None and args.backend == "llamacpp":
        raise UserError("--min-confidence needs the student's token probabilities: use --adapter (transformers); "
                        "the llama.cpp backend reports none here")
    results = predict(args.gguf or args.adapter, schema, queries, constrained=args.constrained,
                      max_new_tokens=args.max_new_tokens, schema_format=args.schema_format, device=args.device,
                      batch_size=args.batch_size, backend=args.backend, contexts=contexts)
    for result in results:
        if not result["parsed"]:
            why = "truncated at --max-new-tokens" if result["truncated"] else "not a JSON object"
            print(f"note: request {result['query']!r}: output {why}: {result['raw'][:120]!r}", file=sys.stderr)
        elif not result["schema_valid"]:  # constrained decoding cannot hold every keyword (uniqueItems, ...)
            print(f"note: request {result['query']!r}: the output is not valid for the schema", file=sys.stderr)
        ast, confidence = result["ast"], result["confidence"]
        if args.min_confidence is not None and confidence is not None and confidence < args.min_confidence:
            kind = "calibrated" if result["calibrated"] else "raw (the checkpoint has no calibration.json)"
            asked = ask_back(ast, schema)
            instead = "a clarification offering it" if asked is not None else "no answer"
            print(f"note: request {result['query']!r}: confidence {confidence:.3f} ({kind}) is below "
                  f"--min-confidence {args.min_confidence:g}: {instead} (it was {dumps(ast)})", file=sys.stderr)
            ast = asked
        print(dumps({"ast": ast, "confidence": confidence} if args.with_confidence else ast), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, build_parser()))
