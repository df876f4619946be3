"""checkpoint_fingerprint: what a checkpoint generates with, and nothing else."""
from __future__ import annotations

from pathlib import Path

from ast_distill.fingerprint import checkpoint_fingerprint, json_digest


def fake_checkpoint(folder: Path, weights: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "config.json").write_text('{"hidden_size": 32}', encoding="utf-8")
    (folder / "tokenizer_config.json").write_text("{}", encoding="utf-8")
    return folder


def test_the_fingerprint_follows_the_weights_and_tokenizer_not_the_path_nor_trainer_state(tmp_path: Path) -> None:
    a = checkpoint_fingerprint(fake_checkpoint(tmp_path / "a", b"weights-1"))
    assert a.startswith("sha256:") and a == checkpoint_fingerprint(fake_checkpoint(tmp_path / "b", b"weights-1"))
    # Trainer bookkeeping beside the weights does not change what the checkpoint generates.
    for name in ("trainer_state.json", "optimizer.pt", "training_args.bin", "run_config.json"):
        (tmp_path / "a" / name).write_bytes(b"anything")
    assert checkpoint_fingerprint(tmp_path / "a") == a
    assert checkpoint_fingerprint(fake_checkpoint(tmp_path / "a", b"weights-2")) != a  # retrained in place
    (tmp_path / "b" / "tokenizer.json").write_text("{}", encoding="utf-8")
    assert checkpoint_fingerprint(tmp_path / "b") != a


def test_a_hub_id_is_its_own_fingerprint_and_json_digests_ignore_key_order() -> None:
    assert checkpoint_fingerprint("google/gemma-3-270m-it") == "hub:google/gemma-3-270m-it"
    assert json_digest({"a": 1, "b": [1, 2]}) == json_digest({"b": [1, 2], "a": 1}) != json_digest({"a": 2})
