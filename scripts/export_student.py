"""Stage 10: export a student for Ollama, llama.cpp or plain transformers, and check that it answers alike.

Writes <out_dir>/: merged/ (the LoRA merged into its base), student-<type>.gguf per GGUF type (llama.cpp's
converter and quantizer, from the `export` extra), modelfiles/<schema id>.Modelfile (the training prompt as
TEMPLATE) with schemas/<schema id>.json, verification.json (each GGUF against the transformers student on
test rows), README.md and made_by.json. A rerun with the same checkpoint and settings keeps the folder.

Run as:
  ./runExport.sh --config config/offline-gemma.json
  uv run scripts/export_student.py --config config/offline-gemma.json
  uv run scripts/export_student.py --checkpoint outputs/student_runs/gemma/checkpoint-final \
      --quant-types f16,q4_k_m --verify-rows 20 --out-dir outputs/export/gemma
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ast_distill import cli, dsl
from ast_distill.config import flag_settings, load_config
from ast_distill.errors import UserError
from ast_distill.export import bundle, llamacpp_tools
from ast_distill.export.verify import verification_table, verify_ggufs
from ast_distill.runs import resolve_checkpoint
from ast_distill.settings import ExportSettings, check_ranges


def build_parser() -> argparse.ArgumentParser:
    parser = cli.stage_parser(__doc__)
    cli.add_settings_flags(parser, ExportSettings)  # every key of the export section
    return parser


def run_from(args: argparse.Namespace, config: dict) -> bundle.ExportRun:
    values = flag_settings(args, config, "export")
    check_ranges(ExportSettings, values)
    checkpoint = resolve_checkpoint(values["checkpoint"]) if values["checkpoint"] else bundle.default_checkpoint(config)
    bundle.check_checkpoint(checkpoint)
    values["checkpoint"] = str(Path(checkpoint).absolute())
    values["out_dir"] = values["out_dir"] or str(Path(checkpoint).parent / "export")
    types = llamacpp_tools.check_quant_types(values["quant_types"].split(","))
    if values["modelfile_gguf"].lower() not in types:
        raise UserError(f"--modelfile-gguf {values['modelfile_gguf']} is not one of --quant-types {','.join(types)}")
    values["modelfile_gguf"] = values["modelfile_gguf"].lower()
    from ast_distill.predict import trained_schema_format

    return bundle.ExportRun(**values, schema_format=trained_schema_format(checkpoint), types=types)


def modelfile_schemas(run: bundle.ExportRun, schemas: dict) -> dict:
    if not run.modelfile_schemas:
        return schemas
    wanted = [s.strip() for s in run.modelfile_schemas.split(",") if s.strip()]
    missing = [s for s in wanted if s not in schemas]
    if missing:
        raise UserError(f"--modelfile-schemas: {', '.join(missing)} not in {run.final_schemas}; its ids start "
                        f"{', '.join(sorted(schemas)[:3])}")
    return {s: schemas[s] for s in wanted}


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    run = run_from(args, config)
    cli.print_settings("export_student", vars(run))
    schemas = dsl.load_schemas(run.final_schemas)
    rows = bundle.rows_for_check(run.verify_dataset, schemas, run.verify_rows) if run.verify_rows else []

    def verify(work: Path, ggufs: dict) -> dict | None:
        if not rows:
            return None
        return verify_ggufs(run.checkpoint, ggufs, work / bundle.MERGED, rows, schemas,
                            max_new_tokens=run.max_new_tokens, batch_size=run.batch_size, n_ctx=run.n_ctx)

    out = bundle.run_export(run, modelfile_schemas(run, schemas), verify)
    made_by = bundle.load_made_by(out)
    if made_by.get("verification"):
        print(verification_table(made_by["verification"]))
    cli.print_outputs("export_student", {"export": out, "readme": out / "README.md", "made_by": out / "made_by.json"})
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, build_parser()))
