"""Teacher-aligned preference pairs for DPO, built from an evaluation of the SFT student on the pref rows.

A pair says, for the prompt the student saw: the teacher's AST (chosen) is better than what the student wrote
(rejected). Pairs are in TRL's conversational preference format: ``prompt`` is the evaluated row's chat
messages (the ones ``prompting.build_prompt`` made for d_04), ``chosen`` and ``rejected`` one assistant message
each, the AST as ``prompting.build_completion`` renders it (the student's raw text when its output did not
parse: a broken output is exactly what DPO should push down). TRL applies the chat template to them as SFT
does to its prompt-completion rows, so DPO scores the same token sequences SFT trained on, ending with the
template's end of turn and nothing after it (TRL appends an eos only to plain-text pairs).
"""
from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..jsonl import meta_path, read_jsonl, write_json_atomic, write_jsonl_atomic
from ..prompting import Messages, build_completion, is_messages
from ..provenance import provenance
from ..runs import resolve_checkpoint
from ..scoring import teacher_accepted
from ..settings import AlignmentSettings, check_ranges

# Why an evaluation row gave no pair, in the order the checks run.
DROP_REASONS = (
    "teacher_accepted",  # --only-rejected: the teacher held the student's output right
    "no_teacher_verdict",  # --only-rejected: the teacher gave no verdict on a wrong output
    "no_teacher_ast",  # the teacher wrote no AST to prefer
    "chosen_equals_rejected",  # both sides render to the same text: nothing to learn
    "over_max_pairs",  # left out by --max-pairs
)


def chosen_message(record: Mapping[str, Any]) -> Messages | None:
    """The teacher's AST as the assistant turn SFT trains on, or None when the row has no teacher AST."""
    ast = record.get("teacher_canonical")
    return build_completion(ast) if isinstance(ast, dict) else None


def rejected_message(record: Mapping[str, Any]) -> Messages:
    """The student's output as an assistant turn: its AST rendered as SFT's completions when it parsed, else
    its raw text."""
    ast = record.get("student_ast")
    if record.get("parsed") and isinstance(ast, dict):
        return build_completion(ast)
    return [{"role": "assistant", "content": str(record.get("student_raw") or "").strip()}]


def evaluated_prompts(records: Sequence[Mapping[str, Any]], dataset: str | Path | None) -> dict[str, Messages]:
    """id -> the chat messages each evaluation row's prompt was rendered from.

    evaluation_results.jsonl holds the rendered prompt_text only, so the messages come from the dataset the
    evaluation read (d_04), by row id; a record that carries its own "prompt" messages is taken as it is.
    """
    prompts = {str(r["id"]): list(r["prompt"]) for r in records if is_messages(r.get("prompt"))}
    if len(prompts) < len(records) and dataset:
        wanted = {str(r["id"]) for r in records} - prompts.keys()
        for row in read_jsonl(dataset):
            if str(row.get("id")) in wanted and is_messages(row.get("prompt")):
                prompts[str(row["id"])] = list(row["prompt"])
    return prompts


@dataclass
class PairSet:
    """The pairs kept, and how many evaluation rows were dropped for each reason."""
    pairs: list[dict[str, Any]]
    n_rows: int
    dropped: Counter[str] = field(default_factory=Counter)

    def counts(self) -> dict[str, Any]:
        return {"rows": self.n_rows, "pairs": len(self.pairs),
                "dropped": {reason: self.dropped.get(reason, 0) for reason in DROP_REASONS}}


def _check_record(record: Mapping[str, Any], index: int, where: str) -> None:
    for key in ("id", "prompt_text"):
        if not isinstance(record.get(key), str) or not record[key]:
            raise UserError(f"{where}: row {index + 1} has no '{key}'; pass the evaluation_results.jsonl that "
                            f"scripts/evaluate_student.py wrote")
    # README "Honest splits": no test row and no row of a held-out schema is ever trained on.
    if record.get("split") == "test" or record.get("schema_seen") is False:
        raise UserError(f"{where}: row {index + 1} (id {record['id']}) is a test row or a held-out schema's row; "
                        f"DPO pairs must come from the pref rows only (evaluate_student.py --split pref)")


def _drop_reason(record: Mapping[str, Any], only_rejected: bool, chosen: Messages | None,
                 rejected: Messages) -> str | None:
    if only_rejected:
        verdict = teacher_accepted(record)
        if verdict is True:
            return "teacher_accepted"
        if verdict is None:
            return "no_teacher_verdict"
    if chosen is None:
        return "no_teacher_ast"
    if chosen == rejected:
        return "chosen_equals_rejected"
    return None


def _pair_prompt(record: Mapping[str, Any], index: int, prompts: Mapping[str, Messages],
                 render: Callable[[Messages], str] | None, where: str) -> Messages:
    prompt = prompts.get(str(record["id"]))
    if prompt is None:
        raise UserError(f"{where}: row {index + 1} (id {record['id']}) has no prompt messages and the dataset holds "
                        f"no row with its id; pass the d_04 file the evaluation read (--dataset)")
    # The messages must be the ones the student was evaluated on, or DPO would train on another prompt.
    if render is not None and render(prompt) != record["prompt_text"]:
        raise UserError(f"{where}: row {index + 1} (id {record['id']}): the dataset's prompt for it renders to "
                        f"other text than the student was evaluated on; pass the --dataset and --adapter that "
                        f"evaluate_student.py used")
    return prompt


def build_pairs(records: Iterable[Mapping[str, Any]], prompts: Mapping[str, Messages], *,
                render: Callable[[Messages], str] | None = None, only_rejected: bool = True,
                max_pairs: int | None = None, seed: int = 0, where: str = "evaluation results") -> PairSet:
    """DPO pairs {id, schema_id, language, kind, prompt, chosen, rejected, ...} from evaluation rows.

    prompts: id -> the row's prompt messages (evaluated_prompts). render: the chat template of the evaluated
    checkpoint (student.prompt_text); when given, each kept pair's prompt must render to the row's prompt_text.
    Pair id = evaluation row id. With max_pairs, a seeded random subset is kept, in input order.
    """
    records = list(records)
    result = PairSet(pairs=[], n_rows=len(records))
    for index, record in enumerate(records):
        _check_record(record, index, where)
        chosen, rejected = chosen_message(record), rejected_message(record)
        reason = _drop_reason(record, only_rejected, chosen, rejected)
        if reason is not None:
            result.dropped[reason] += 1
            continue
        result.pairs.append({
            "id": record["id"], "schema_id": record.get("schema_id"), "split": record.get("split"),
            "language": record.get("language"), "kind": record.get("kind"),
            "prompt": _pair_prompt(record, index, prompts, render, where), "chosen": chosen, "rejected": rejected,
            "teacher_verdict": teacher_accepted(record), "student_parsed": bool(record.get("parsed")),
        })
    if max_pairs is not None and len(result.pairs) > max_pairs:
        keep = set(random.Random(seed).sample(range(len(result.pairs)), max_pairs))
        result.dropped["over_max_pairs"] += len(result.pairs) - max_pairs
        result.pairs = [pair for i, pair in enumerate(result.pairs) if i in keep]
    return result


def write_pairs(settings: Mapping[str, Any], *, resolved_config: Mapping[str, Any] | None = None,
                log: Any = print) -> dict[str, Any]:
    """Build the pairs file from settings {eval_results, dataset, out, adapter, only_rejected, max_pairs, seed}.

    dataset: the d_04 file the evaluation read (the prompt messages, by row id). adapter: the evaluated
    checkpoint, whose chat template must render each pair's prompt to the text the student saw. Writes the
    pairs (empty when none are kept) and <pairs>.meta.json atomically; returns the counts.
    """
    from ..student import load_tokenizer, prompt_text

    if not settings["adapter"]:
        raise UserError("no SFT checkpoint named: pass --adapter DIR or set alignment.adapter in the config")
    check_ranges(AlignmentSettings, {"max_pairs": settings["max_pairs"]})
    records = read_jsonl(settings["eval_results"])
    if not records:
        raise UserError(f"{settings['eval_results']} holds no evaluation rows; run evaluate_student.py --split pref "
                        f"first")
    tokenizer = load_tokenizer(resolve_checkpoint(str(settings["adapter"])))
    result = build_pairs(records, evaluated_prompts(records, settings.get("dataset")),
                         render=lambda messages: prompt_text(tokenizer, messages),
                         only_rejected=bool(settings["only_rejected"]), max_pairs=settings["max_pairs"],
                         seed=int(settings["seed"]), where=str(settings["eval_results"]))
    write_jsonl_atomic(settings["out"], result.pairs)
    meta = {**result.counts(), **provenance(dict(settings)), "config": dict(resolved_config or {})}
    write_json_atomic(meta_path(settings["out"]), meta)
    dropped = ", ".join(f"{reason} {n}" for reason, n in result.counts()["dropped"].items())
    log(f"pairs: kept {len(result.pairs)} of {result.n_rows} evaluation rows; dropped: {dropped}")
    if not result.pairs:
        log("no pairs: no evaluation row gave a chosen/rejected pair (see the drop counts above); nothing to train")
    return {"pairs_file": str(settings["out"]), "meta": str(meta_path(settings["out"])), **result.counts()}
