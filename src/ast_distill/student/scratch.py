"""The offline student: a byte-level BPE tokenizer trained on the corpus and a small random Gemma 3.

Nothing is downloaded. The tokenizer mirrors what matters of Gemma 3's: digits are single tokens (numbers
are copied digit by digit), the special tokens are <pad> <bos> <eos> <start_of_turn> <end_of_turn>, and the
chat template is Gemma 3's turn format (system text folded into the first user turn). A completion rendered
by the template ends with ``<end_of_turn>``, the token generation stops on, so TRL's prompt-completion
training supervises the stop token with no extra EOS appended.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

from .chat import CHAT_TEMPLATE, END_OF_TURN, START_OF_TURN

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
SPECIAL_TOKENS = [PAD, BOS, EOS, START_OF_TURN, END_OF_TURN]

# The training.scratch_* config keys -> build_scratch_model keyword arguments.
_SCRATCH_KEYS = {
    "scratch_hidden_size": "hidden_size",
    "scratch_num_layers": "num_layers",
    "scratch_num_heads": "num_heads",
    "scratch_num_kv_heads": "num_kv_heads",
    "scratch_head_dim": "head_dim",
    "scratch_intermediate_size": "intermediate_size",
    "scratch_rope_theta": "rope_theta",
}


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE with single-digit tokens and Gemma 3's special tokens and chat template."""
    backend = Tokenizer(models.BPE())
    # Digits first, so that no merge ever spans two digits; then GPT-2's byte-level split.
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte stays encodable
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS, eos_token=EOS, pad_token=PAD,
        additional_special_tokens=[START_OF_TURN, END_OF_TURN],
        padding_side="right",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def corpus_texts(rows: Iterable[dict[str, Any]]) -> Iterable[str]:
    """The texts a scratch tokenizer learns from: every message of the rows' prompts and completions."""
    for row in rows:
        for message in list(row.get("prompt") or []) + list(row.get("completion") or []):
            yield str(message.get("content", ""))


def build_scratch_model(tokenizer: PreTrainedTokenizerFast, *, hidden_size: int, num_layers: int, num_heads: int,
                        num_kv_heads: int, head_dim: int, intermediate_size: int, rope_theta: int = 10_000,
                        max_position_embeddings: int = 2048) -> Gemma3ForCausalLM:
    """A text-only Gemma 3 with random weights and tied embeddings, sized for the given tokenizer."""
    # As in Gemma 3: the config names <eos>, generation stops on <eos> or <end_of_turn>.
    stop_ids = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(END_OF_TURN)]
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        head_dim=head_dim,
        max_position_embeddings=max_position_embeddings,
        query_pre_attn_scalar=head_dim,  # the usual 1/sqrt(head_dim) attention scale
        # Requests are a few hundred tokens: every layer attends to the whole sequence.
        layer_types=["full_attention"] * num_layers,
        sliding_window=max_position_embeddings,
        # Gemma 3's global layers rotate with base 1e6, tuned for 128k contexts: over a few hundred tokens most
        # of its frequencies barely move and positions blur. A small base keeps them sharp.
        rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": float(rope_theta)},
                         "sliding_attention": {"rope_type": "default", "rope_theta": float(rope_theta)}},
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = Gemma3ForCausalLM(config)
    model.generation_config.eos_token_id = stop_ids
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def scratch_config_from(training_cfg: dict[str, Any]) -> dict[str, Any]:
    """build_scratch_model's keyword arguments from the training section's scratch_* keys.

    The tokenizer's size is training_cfg["scratch_vocab_size"], passed to train_tokenizer.
    """
    return {arg: int(training_cfg[key]) for key, arg in _SCRATCH_KEYS.items()}
