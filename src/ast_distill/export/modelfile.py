"""The Ollama Modelfile of an exported student, and the export folder's README.

The Modelfile's TEMPLATE is cut out of the training prompt itself: the prompt is rendered by the checkpoint's
own chat template (``student.prompt_text`` over ``prompting.build_prompt``) with a placeholder request, and the
placeholder becomes ``{{ .Prompt }}``. So Ollama sends the student the text it was trained on (system text,
the schema in the trained format, ``Request: ``, Gemma's turn markers) for one DSL schema per Modelfile. The
leading ``<bos>`` is left to the tokenizer: the GGUF says add_bos_token, and llama.cpp and Ollama add it.
"""
from __future__ import annotations

import json
from typing import Any

from .. import student
from ..errors import UserError
from ..prompting import build_prompt

PLACEHOLDER = "\x00REQUEST\x00"
PROMPT_ACTION = "{{ .Prompt }}"
STOP_WORDS = ("<end_of_turn>", "<eos>")
CTX_ROUNDING = 256  # num_ctx is rounded up to a multiple of this many tokens


def go_template_literal(text: str) -> str:
    """``text`` as literal Go-template text: ``{{`` starts an action there, so it is written as an action that
    prints it."""
    return text.replace("{{", '{{ "{{" }}')


def template_from_prompt(prompt_with_placeholder: str, bos_token: str | None) -> str:
    """The Ollama TEMPLATE for a prompt rendered with PLACEHOLDER as the request."""
    if prompt_with_placeholder.count(PLACEHOLDER) != 1:
        raise ValueError("the rendered prompt must hold the placeholder request exactly once")
    text = prompt_with_placeholder
    if bos_token and text.startswith(bos_token):
        text = text[len(bos_token):]  # the tokenizer adds it (GGUF add_bos_token)
    before, after = text.split(PLACEHOLDER)
    return go_template_literal(before) + PROMPT_ACTION + go_template_literal(after)


def template_for(tokenizer: Any, schema: dict[str, Any], schema_format: str) -> str:
    """The TEMPLATE that renders the training prompt for ``schema``, with the request as ``{{ .Prompt }}``."""
    rendered = student.prompt_text(tokenizer, build_prompt(schema, PLACEHOLDER, schema_format))
    return template_from_prompt(rendered, tokenizer.bos_token)


def render_template(template: str, prompt: str) -> str:
    """What Ollama's Go template engine makes of TEMPLATE for a request: the only actions it holds are
    ``{{ .Prompt }}`` and the ``{{ "{{" }}`` escapes written by go_template_literal."""
    return template.replace('{{ "{{" }}', "\x01").replace(PROMPT_ACTION, prompt).replace("\x01", "{{")


def context_size(longest_prompt_tokens: int, max_new_tokens: int) -> int:
    """num_ctx: the longest prompt seen plus the output budget, rounded up."""
    need = longest_prompt_tokens + max_new_tokens
    return -(-need // CTX_ROUNDING) * CTX_ROUNDING


def modelfile_text(*, gguf_path: str, template: str, num_ctx: int, max_new_tokens: int, header: str) -> str:
    """The Modelfile: FROM the GGUF (a path relative to the Modelfile), the TEMPLATE, stop words, greedy."""
    if '"""' in template:
        raise UserError('the prompt holds three double quotes in a row, which a Modelfile TEMPLATE cannot hold; '
                        'render the schema in the other format (--schema-format)')
    lines = [f"# {line}" for line in header.splitlines()]
    lines += [f"FROM {gguf_path}", f'TEMPLATE """{template}"""']
    lines += [f'PARAMETER stop "{word}"' for word in STOP_WORDS]
    lines += ["PARAMETER temperature 0", f"PARAMETER num_ctx {num_ctx}", f"PARAMETER num_predict {max_new_tokens}"]
    return "\n".join(lines) + "\n"


def export_readme(*, checkpoint: str, gguf_bytes: dict[str, int], schema_ids: list[str], modelfile_gguf: str,
                  num_ctx: int, table: str | None) -> str:
    """README.md of an export folder: what is in it, how to run it with Ollama, llama.cpp and this project."""
    example = schema_ids[0] if schema_ids else "<schema id>"
    lines = [
        "# Exported student", "",
        f"Made from `{checkpoint}` by `scripts/export_student.py` (`made_by.json` records the settings, tool "
        "versions and the sha256 of every file). The folder is self-contained: move it anywhere.", "",
        "| file | what |", "|---|---|",
        "| `merged/` | the LoRA adapter merged into its base: a plain transformers folder |",
    ]
    lines += [f"| `{name}` | GGUF, {size / 1e6:.0f} MB |" for name, size in gguf_bytes.items()]
    lines += [f"| `modelfiles/<schema id>.Modelfile` | Ollama Modelfile per schema ({len(schema_ids)}), loading "
              f"`{modelfile_gguf}`; its TEMPLATE is the training prompt with the schema in it |",
              "| `schemas/<schema id>.json` | that schema (a d_02 record) |",
              "| `verification.json` | each GGUF against the transformers student on test rows |"]
    lines += [
        "", "## Ollama", "",
        "The Modelfile holds the schema in its prompt; pass the same schema as `format` to constrain the output:", "",
        "```bash",
        f"ollama create ast-student -f modelfiles/{example}.Modelfile",
        'ollama run ast-student "products under 20 euros"',
        f"jq -c '{{model: \"ast-student\", prompt: \"products under 20 euros\", stream: false, format: .schema}}' "
        f"schemas/{example}.json | curl -s localhost:11434/api/generate -d @-",
        "```", "",
        "Ollama sends the request as typed; training stripped leading and trailing spaces, so strip them too.", "",
        "## llama.cpp", "",
        "From the project's folder (the prompt rendered as in training, llama.cpp's JSON-Schema grammar):", "",
        "```bash",
        f"uv run scripts/predict.py --backend llamacpp --gguf <this folder>/{modelfile_gguf} \\",
        f"    --schema <this folder>/schemas/{example}.json \\",
        '    --query "products under 20 euros"',
        "```", "",
        "Elsewhere: `llama_cpp.Llama(model_path=..., n_ctx=" + str(num_ctx) + ")` with the Modelfile's TEMPLATE as "
        "the prompt (llama.cpp adds `<bos>`), `LlamaGrammar.from_json_schema(json.dumps(schema))` as grammar "
        "(write a pattern's `\\d` as `[0-9]`: that converter copies the escape into a grammar llama.cpp rejects), "
        "greedy decoding, stop on `<end_of_turn>`.", "",
    ]
    if table:
        lines += ["## Does it answer like the trained student?", "", table, ""]
    return "\n".join(lines)


def schema_record_json(schema_id: str, schema: dict[str, Any]) -> str:
    """A d_02-shaped record of one schema, as the export folder stores it beside its Modelfile."""
    return json.dumps({"id": schema_id, "schema": schema}, ensure_ascii=False, indent=2) + "\n"
