"""SFT data preparation: which corpus rows train and which measure eval_loss, their token lengths, chaining
several requests of one schema into one conversation, and the padding a batch order costs.

Rows of split "train" are trained on, "val" rows give eval_loss; "pref" and "test" rows are never used here
(honest splits). Over-long rows are dropped and counted beforehand (TRL would truncate them silently, losing
the stop token).
"""
from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError
from ..prompting import build_follow_up, is_messages
from ..records import EVAL_SPLITS, TRAINED_SPLITS


@dataclass
class SplitRows:
    train: list[dict[str, Any]]
    val: list[dict[str, Any]]
    counts: dict[str, Any] = field(default_factory=dict)


def select_rows(rows: list[dict[str, Any]], *, val_split: float, eval_max_samples: int | None,
                max_samples: int | None, seed: int) -> SplitRows:
    """Train rows (split "train", capped by max_samples) and eval rows (split "val", capped).

    val_split 0 disables eval. A corpus with no "val" rows gets val_split of its train rows held out (seeded).
    Rows of any other split ("pref", "test") are counted and left alone.
    """
    by_split: dict[str, int] = {}
    for row in rows:
        by_split[str(row.get("split"))] = by_split.get(str(row.get("split")), 0) + 1
    train = [r for r in rows if r.get("split") in TRAINED_SPLITS]
    val = [r for r in rows if r.get("split") in EVAL_SPLITS]
    held_out = 0
    if val_split <= 0:
        val = []
    elif not val and len(train) > 1:
        shuffled = list(train)
        random.Random(seed).shuffle(shuffled)
        held_out = min(len(train) - 1, max(1, round(len(train) * val_split)))
        val, train = shuffled[:held_out], shuffled[held_out:]
    if max_samples is not None and max_samples > 0:
        train = train[:max_samples]
    if eval_max_samples is not None and eval_max_samples > 0:
        val = val[:eval_max_samples]
    counts = {"rows_by_split": by_split, "train_rows": len(train), "val_rows": len(val),
              "val_held_out_from_train": held_out,
              "never_trained_rows": sum(n for s, n in by_split.items() if s not in TRAINED_SPLITS + EVAL_SPLITS)}
    return SplitRows(train, val, counts)


def check_rows(rows: list[dict[str, Any]], where: str) -> None:
    """Each row must carry chat-message lists in prompt and completion (the d_04 shape)."""
    for i, row in enumerate(rows):
        for key in ("prompt", "completion"):
            if not is_messages(row.get(key)):
                raise UserError(f"{where}: row {i + 1} (id {row.get('id')}) needs '{key}' as a list of chat "
                                f"messages {{role, content}}; rebuild the corpus with build_training_corpus.py")


def sequence_length(tokenizer: Any, row: dict[str, Any]) -> int:
    """Tokens of prompt + completion as TRL tokenizes them (the chat template over both)."""
    return conversation_lengths(tokenizer, [row["prompt"] + row["completion"]])[0]


def conversation_lengths(tokenizer: Any, conversations: list[list[dict[str, str]]]) -> list[int]:
    """Token counts of chat conversations, rendered by the chat template and tokenized as one batch.

    The same ids as apply_chat_template(..., tokenize=True) one by one (it renders, then tokenizes without
    special tokens), ~10x faster over a whole corpus: one template call and one batched fast-tokenizer call.
    """
    if not conversations:
        return []
    texts = tokenizer.apply_chat_template(conversations, tokenize=False)
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def drop_overlong(rows: list[dict[str, Any]], tokenizer: Any,
                  max_seq_length: int) -> tuple[list[dict[str, Any]], list[int], int]:
    """(rows that fit, their lengths, how many were dropped). TRL would truncate the rest, losing the stop."""
    all_lengths = conversation_lengths(tokenizer, [r["prompt"] + r["completion"] for r in rows])
    kept = [row for row, n in zip(rows, all_lengths) if n <= max_seq_length]
    lengths = [n for n in all_lengths if n <= max_seq_length]
    return kept, lengths, len(rows) - len(kept)


def to_dataset(rows: list[dict[str, Any]]) -> Any:
    """TRL's conversational prompt-completion dataset: {"prompt": messages, "completion": messages}."""
    from datasets import Dataset

    return Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])


def to_conversation_dataset(conversations: list[list[dict[str, str]]]) -> Any:
    """TRL's conversational language-modeling dataset: {"messages": messages} (for assistant_only_loss)."""
    from datasets import Dataset

    return Dataset.from_list([{"messages": messages} for messages in conversations])


def follow_up_lengths(tokenizer: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Tokens each row adds as a later turn of a conversation (its request alone, then its answer)."""
    opening = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "x"}]
    base = conversation_lengths(tokenizer, [opening])[0]
    return [n - base for n in conversation_lengths(
        tokenizer, [opening + [build_follow_up(r["query"], r.get("context"))] + r["completion"] for r in rows])]


def vocabulary_texts(tokenizer: Any, rows: list[dict[str, Any]]) -> list[str]:
    """Every text the trainer tokenizes for these rows, as the chat template renders it: each row's prompt and
    completion, and its request as a later turn of a chained conversation (the vocabulary a trimmed student
    keeps, student/trim.py)."""
    whole = [r["prompt"] + r["completion"] for r in rows]
    later = [[build_follow_up(r["query"], r.get("context"))] + r["completion"] for r in rows if r.get("query")]
    return list(tokenizer.apply_chat_template(whole + later, tokenize=False)) if rows else []


def chain_requests(rows: list[dict[str, Any]], first_lengths: list[int], later_lengths: list[int], *,
                   per_sequence: int, max_seq_length: int, passes: int,
                   seed: int) -> tuple[list[list[dict[str, str]]], list[int]]:
    """Conversations of up to per_sequence requests on one schema, and their token lengths.

    Each pass shuffles every schema's rows and chains them greedily while the conversation fits in
    max_seq_length; a new pass regroups them, so no two epochs repeat the same conversations.
    """
    by_schema: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_schema.setdefault(str(row["schema_id"]), []).append(i)
    rng = random.Random(seed)
    chained: list[tuple[list[dict[str, str]], int]] = []
    for _ in range(passes):
        for schema_id in sorted(by_schema):
            order = list(by_schema[schema_id])
            rng.shuffle(order)
            messages: list[dict[str, str]] = []
            length = count = 0
            for i in order:
                if messages and (count >= per_sequence or length + later_lengths[i] > max_seq_length):
                    chained.append((messages, length))
                    messages, length, count = [], 0, 0
                if not messages:
                    messages, length = list(rows[i]["prompt"]) + list(rows[i]["completion"]), first_lengths[i]
                else:
                    messages = messages + [build_follow_up(rows[i]["query"], rows[i].get("context"))] + list(rows[i]["completion"])
                    length += later_lengths[i]
                count += 1
            if messages:
                chained.append((messages, length))
    rng.shuffle(chained)
    return [m for m, _ in chained], [n for _, n in chained]


def chaining_passes(cfg: Mapping[str, Any], conversations_per_pass: int) -> int:
    """Passes over the train rows needed for max_steps (or num_epochs when max_steps is unset)."""
    if cfg["max_steps"] is not None and int(cfg["max_steps"]) > 0:
        needed = int(cfg["max_steps"]) * int(cfg["batch_size"]) * int(cfg["grad_accum"])
        return max(1, math.ceil(needed / max(conversations_per_pass, 1)))
    return max(1, math.ceil(float(cfg["num_epochs"])))


def padding_share(lengths: list[int], batch_size: int, bucketed: bool, *, grad_accum: int = 1,
                  seed: int = 0) -> float:
    """Padded tokens / all tokens over one epoch of batches, in the order the trainer's sampler draws them.

    bucketed=True uses transformers' length-grouped order (what group_by_length trains with), else a
    random permutation (the default sampler).
    """
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    if not lengths:
        return 0.0
    generator = torch.Generator().manual_seed(seed)
    if bucketed:
        order = get_length_grouped_indices(lengths, batch_size * grad_accum, generator=generator)
    else:
        order = torch.randperm(len(lengths), generator=generator).tolist()
    slots = real = 0
    for start in range(0, len(order), batch_size):
        batch = [lengths[i] for i in order[start:start + batch_size]]
        slots += max(batch) * len(batch)
        real += sum(batch)
    return 1.0 - real / slots
