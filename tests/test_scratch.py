"""The scratch tokenizer and model, and loading students (student.py)."""
from __future__ import annotations

import pytest
import torch
from helpers import TINY_SIZES, make_tiny_corpus, make_tiny_lora_base, make_tiny_student

from ast_distill.errors import UserError
from ast_distill.student.scratch import (
    CHAT_TEMPLATE,
    END_OF_TURN,
    SPECIAL_TOKENS,
    build_scratch_model,
    corpus_texts,
    scratch_config_from,
    train_tokenizer,
)
from ast_distill.student import load_student, merge_for_training, prompt_text, stop_token_ids

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(corpus_texts(make_tiny_corpus(24)), 400)


def test_tokenizer_splits_digits_into_single_tokens(tokenizer):
    tokens = tokenizer.tokenize("price above 12345 on 2024-05-17")
    digits = [t for t in tokens if any(c.isdigit() for c in t)]
    assert "".join(digits) == "12345" + "20240517"
    assert all(len(t) == 1 for t in digits)


def test_tokenizer_has_gemma_special_tokens_and_round_trips_text(tokenizer):
    for token in SPECIAL_TOKENS:
        assert tokenizer.convert_tokens_to_ids(token) is not None
    assert (tokenizer.pad_token, tokenizer.bos_token, tokenizer.eos_token) == ("<pad>", "<bos>", "<eos>")
    text = 'Les produits {"op":"within","value":[3.5,"2024-01-01"]} déjà vus'
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_chat_template_folds_system_into_first_user_turn_like_gemma3(tokenizer):
    messages = [{"role": "system", "content": "Sys"}, {"role": "user", "content": "Hi"}]
    assert prompt_text(tokenizer, messages) == (
        "<bos><start_of_turn>user\nSys\n\nHi<end_of_turn>\n<start_of_turn>model\n")


def test_prompt_tokens_are_a_prefix_and_the_completion_ends_with_end_of_turn(tokenizer):
    # TRL finds the completion where the tokenized prompt and prompt+completion diverge.
    row = make_tiny_corpus(3)[2]
    prompt = tokenizer.apply_chat_template(row["prompt"], tokenize=True, return_dict=True,
                                           add_generation_prompt=True)["input_ids"]
    full = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True,
                                         return_dict=True)["input_ids"]
    assert full[:len(prompt)] == prompt
    completion = tokenizer.decode(full[len(prompt):])
    assert completion == row["completion"][0]["content"] + END_OF_TURN + "\n"


def test_stop_tokens_are_eos_and_end_of_turn(tokenizer):
    assert sorted(stop_token_ids(tokenizer)) == sorted(
        [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(END_OF_TURN)])


def test_scratch_model_is_a_tied_gemma3_sized_to_the_tokenizer(tokenizer):
    model = build_scratch_model(tokenizer, **TINY_SIZES)
    assert type(model).__name__ == "Gemma3ForCausalLM"
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert set(model.generation_config.eos_token_id) == set(stop_token_ids(tokenizer))


def test_scratch_config_reads_the_training_scratch_keys():
    cfg = {"scratch_hidden_size": 192, "scratch_num_layers": 4, "scratch_num_heads": 4, "scratch_num_kv_heads": 2,
           "scratch_head_dim": 48, "scratch_intermediate_size": 768, "scratch_vocab_size": 2048,
           "scratch_rope_theta": 10000}
    assert scratch_config_from(cfg) == {"hidden_size": 192, "num_layers": 4, "num_heads": 4, "num_kv_heads": 2,
                                        "head_dim": 48, "intermediate_size": 768, "rope_theta": 10000}


def test_scratch_model_rotates_every_layer_with_the_configured_rope_base(tokenizer):
    model = build_scratch_model(tokenizer, **dict(TINY_SIZES, rope_theta=5000))
    assert {p["rope_theta"] for p in model.config.rope_parameters.values()} == {5000.0}


def test_chat_template_marks_every_answer_and_its_stop_token_for_assistant_only_loss(tokenizer):
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "Schema: q1"},
                {"role": "assistant", "content": "{}"}, {"role": "user", "content": "Request: q2"},
                {"role": "assistant", "content": "[]"}]
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    marked = tokenizer.decode([t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m])
    assert marked == "{}" + END_OF_TURN + "[]" + END_OF_TURN
    # the markers add no text: a one-turn prompt renders as Gemma 3's template does
    assert tokenizer.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True) == (
        "<bos><start_of_turn>user\nS\n\nSchema: q1<end_of_turn>\n<start_of_turn>model\n")


def test_saved_tiny_student_loads_with_its_chat_template_and_generates(tmp_path):
    path = make_tiny_student(tmp_path)
    model, tok = load_student(path, device="cpu")
    assert not model.training
    assert tok.chat_template == CHAT_TEMPLATE
    inputs = tok(prompt_text(tok, make_tiny_corpus(1)[0]["prompt"]), return_tensors="pt", add_special_tokens=False)
    out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_load_student_rejects_a_dir_with_neither_model_nor_adapter(tmp_path):
    with pytest.raises(UserError, match="neither a model"):
        load_student(str(tmp_path))
    with pytest.raises(UserError, match="not a checkpoint dir"):
        load_student(str(tmp_path / "missing" / "checkpoint-final"))


def test_merge_for_training_merges_a_lora_adapter_into_a_plain_model(tmp_path):
    base_dir, _, adapter_dir, ids, expected = saved_lora_adapter(tmp_path)

    loaded, _ = load_student(str(adapter_dir), device="cpu")
    assert type(loaded).__name__ == "PeftModel"
    merged, _ = merge_for_training(str(adapter_dir))
    assert type(merged).__name__ == "Gemma3ForCausalLM" and merged.training
    with torch.no_grad():
        got = merged.eval()(ids).logits
        plain = load_student(base_dir, device="cpu")[0](ids).logits
    assert torch.allclose(got, expected, atol=1e-4)
    assert not torch.allclose(got, plain, atol=1e-4)


def test_load_for_inference_merges_the_adapter_into_the_same_function_and_int8_still_generates(tmp_path):
    from ast_distill.generation import StudentGenerator
    from ast_distill.student import load_for_inference, stop_token_ids

    _, tok, adapter_dir, ids, expected = saved_lora_adapter(tmp_path)

    merged, _ = load_for_inference(str(adapter_dir), device="cpu")
    assert type(merged).__name__ == "Gemma3ForCausalLM" and not merged.training
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, expected, atol=1e-4)

    quantized, _ = load_for_inference(str(adapter_dir), device="cpu", dynamic_int8=True)
    assert isinstance(quantized.model.layers[0].self_attn.q_proj, torch.ao.nn.quantized.dynamic.Linear)
    generator = StudentGenerator(quantized, tok, stop_token_ids=stop_token_ids(tok))
    assert generator.vocab_size == expected.shape[-1]  # the logits width, read through the quantized head
    [(_, out)] = next(generator.generate_all(["products above 12"], [None], batch_size=1, max_new_tokens=3,
                                             progress=False))
    assert len(out.token_ids) <= 3  # it decodes (the grammar-free path through the quantized head)
    with torch.no_grad():
        approx = quantized(ids).logits
    assert not torch.equal(approx, expected)  # the weights really are int8 now
    assert torch.nn.functional.cosine_similarity(approx.flatten(), expected.flatten(), dim=0) > 0.99


def saved_lora_adapter(tmp_path):
    """A LoRA adapter with non-zero B (so it matters) saved on the tiny base: (base dir, tokenizer, adapter dir,
    input ids, the adapter model's logits for them)."""
    from peft import LoraConfig, get_peft_model

    base_dir = make_tiny_lora_base(tmp_path)
    base, tok = load_student(base_dir, for_training=True)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                 init_lora_weights=False))
    adapter_dir = tmp_path / "adapter"
    peft_model.save_pretrained(adapter_dir)
    tok.save_pretrained(adapter_dir)
    ids = torch.tensor([tok("products above 12")["input_ids"]])
    with torch.no_grad():
        expected = peft_model.eval()(ids).logits
    return base_dir, tok, str(adapter_dir), ids, expected
