"""The export stage: Modelfile templates equal the training prompt, bad input is one line, and (slow) a tiny
Gemma 3 LoRA student exports to GGUF files that llama.cpp decodes token for token like transformers."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import make_tiny_corpus, make_tiny_schema_record, make_tiny_sentencepiece_base, make_tiny_student

from ast_distill import student
from ast_distill.config import REPO_ROOT
from ast_distill.errors import UserError
from ast_distill.export import bundle, modelfile
from ast_distill.llamacpp import llama_grammar_schema
from ast_distill.jsonl import write_json_atomic, write_jsonl_atomic
from ast_distill.prompting import build_prompt

EXPORT_SCRIPT = str(REPO_ROOT / "scripts" / "export_student.py")
REQUESTS = ["products above 20 euros", "  les produits {{ .Prompt }} de la catégorie toy  ", 'say "{{" and }}']


@pytest.fixture(scope="module")
def sentencepiece_base(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_tiny_sentencepiece_base(tmp_path_factory.mktemp("spm"))


@pytest.mark.parametrize("schema_format", ["compact", "json"])
def test_the_modelfile_template_renders_exactly_the_training_prompt(sentencepiece_base: str,
                                                                    schema_format: str) -> None:
    tokenizer = student.load_tokenizer(sentencepiece_base)
    schema = make_tiny_schema_record()["schema"]
    schema["title"] = "shop {{ DSL }}"  # a Go-template action in the schema text must stay text
    template = modelfile.template_for(tokenizer, schema, schema_format)
    assert template.count(modelfile.PROMPT_ACTION) == 1 and not template.startswith(tokenizer.bos_token)
    for request in REQUESTS:
        training = student.prompt_text(tokenizer, build_prompt(schema, request, schema_format))
        # llama.cpp and Ollama add <bos> themselves (the GGUF says add_bos_token); training trimmed the request.
        assert tokenizer.bos_token + modelfile.render_template(template, request.strip()) == training


def test_the_modelfile_loads_the_gguf_beside_it_greedily_with_gemma_stop_words() -> None:
    text = modelfile.modelfile_text(gguf_path="../student-q4_k_m.gguf", template="T {{ .Prompt }}", num_ctx=768,
                                    max_new_tokens=256, header="made here")
    assert text.splitlines()[1:3] == ["FROM ../student-q4_k_m.gguf", 'TEMPLATE """T {{ .Prompt }}"""']
    assert 'PARAMETER stop "<end_of_turn>"' in text and "PARAMETER temperature 0" in text
    assert modelfile.context_size(700, 256) == 1024 and modelfile.context_size(512, 0) == 512
    with pytest.raises(UserError, match="three double quotes"):
        modelfile.modelfile_text(gguf_path="x", template='a """ b', num_ctx=1, max_new_tokens=1, header="")


def test_the_sentencepiece_model_is_found_through_a_dpo_students_lineage(tmp_path: Path) -> None:
    base, sft, merged, dpo = (tmp_path / name for name in ("base", "sft", "sft-merged", "dpo"))
    for folder in (base, sft, merged, dpo):
        folder.mkdir()
    (base / "config.json").write_text("{}")
    (base / "tokenizer.model").write_bytes(b"spm")
    write_json_atomic(sft / "adapter_config.json", {"base_model_name_or_path": str(base)})
    (merged / "config.json").write_text("{}")
    write_json_atomic(merged / "merged_from.json", {"adapter": str(sft), "base_model": None})
    write_json_atomic(dpo / "adapter_config.json", {"base_model_name_or_path": "../sft-merged"})
    assert bundle.sentencepiece_model_of(str(dpo)) == base / "tokenizer.model"
    (base / "tokenizer.model").unlink()  # a BPE-only lineage (the scratch student) has none
    assert bundle.sentencepiece_model_of(str(dpo)) is None


def test_digit_escapes_in_patterns_become_classes_for_llama_cpps_grammar() -> None:
    schema = {"type": "object", "properties": {"day": {"type": "string", "pattern": "^\\d{4}-\\d{2}$"},
                                               "pattern": {"type": "string", "description": "\\d stays"}}}
    rewritten = llama_grammar_schema(schema)
    assert rewritten["properties"]["day"]["pattern"] == "^[0-9]{4}-[0-9]{2}$"
    assert rewritten["properties"]["pattern"]["description"] == "\\d stays"


def export_here(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    """(exit code, stderr) of export_student.py run in this process, as from the repo root."""
    import importlib.util

    from ast_distill import cli

    monkeypatch.chdir(REPO_ROOT)
    spec = importlib.util.spec_from_file_location("export_student", EXPORT_SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    capsys.readouterr()
    code = cli.run(script.main, script.build_parser(), list(args))
    return code, capsys.readouterr().err


def run_export(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, EXPORT_SCRIPT, *args], capture_output=True, text=True, timeout=600,
                          cwd=REPO_ROOT)


def test_a_folder_that_is_no_checkpoint_is_one_line_and_exit_2(tmp_path: Path, capsys, monkeypatch) -> None:
    code, err = export_here(capsys, monkeypatch, "--checkpoint", str(tmp_path), "--out-dir", str(tmp_path / "export"))
    assert code == 2 and err.strip().count("\n") == 0 and "neither a model" in err
    assert not (tmp_path / "export").exists()


def test_an_adapter_whose_base_is_gone_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    adapter = tmp_path / "checkpoint-final"
    adapter.mkdir()
    write_json_atomic(adapter / "adapter_config.json", {"base_model_name_or_path": str(tmp_path / "gone")})
    code, err = export_here(capsys, monkeypatch, "--checkpoint", str(adapter), "--out-dir", str(tmp_path / "export"))
    assert code == 2 and "\n" not in err.strip() and "is not a folder here" in err


def test_the_scratch_students_bpe_tokenizer_is_one_line_saying_why(tmp_path: Path, capsys, monkeypatch) -> None:
    code, err = export_here(capsys, monkeypatch, "--checkpoint", make_tiny_student(tmp_path), "--out-dir",
                            str(tmp_path / "export"))
    assert code == 2, err
    line = err.strip()
    assert "\n" not in line and "SentencePiece" in line and "BPE" in line
    assert not (tmp_path / "export").exists()


def test_an_unknown_quant_type_is_one_line_naming_the_known_ones(sentencepiece_base: str, tmp_path: Path, capsys,
                                                                 monkeypatch) -> None:
    code, err = export_here(capsys, monkeypatch, "--checkpoint", sentencepiece_base, "--quant-types", "f16,q3_zz",
                            "--out-dir", str(tmp_path / "export"))
    assert code == 2, err
    line = err.strip()
    assert "\n" not in line and "q3_zz" in line and "q4_k_m" in line
    assert not (tmp_path / "export").exists()


# --- slow: a real export of a tiny Gemma 3 LoRA student -------------------------------------------------------


def tiny_gemma3_lora_student(root: Path, tokenizer_dir: str) -> tuple[str, str]:
    """(base dir, adapter dir): a tiny Gemma 3 with Gemma 3's own layout (5 sliding-window layers then a global
    one, local rope base 1e4, global 1e6, query scale 1/sqrt(head_dim)) and a LoRA adapter whose weights are
    not zero, so merging changes the model."""
    from peft import LoraConfig, get_peft_model
    from sentencepiece import sentencepiece_model_pb2
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from ast_distill.student.bases import save_sentencepiece_tokenizer
    from ast_distill.student.chat import CHAT_TEMPLATE

    base_dir, adapter_dir = root / "base", root / "checkpoint-final"
    base_dir.mkdir()
    # The turn markers as control pieces, as in Gemma 3's own vocabulary (the packaged base's tokenizer.model has
    # them so): llama.cpp then parses them as special tokens in a prompt, as transformers does.
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString((Path(tokenizer_dir) / "tokenizer.model").read_bytes())
    for piece in proto.pieces:
        if piece.piece in ("<mask>", "<start_of_turn>", "<end_of_turn>"):
            piece.type = sentencepiece_model_pb2.ModelProto.SentencePiece.CONTROL
    tokenizer = save_sentencepiece_tokenizer(proto.SerializeToString(), base_dir, CHAT_TEMPLATE)
    config = Gemma3TextConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=6,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=32, query_pre_attn_scalar=32,
                              sliding_window=32, max_position_embeddings=2048, initializer_range=0.1,
                              pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                              eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    Gemma3ForCausalLM(config).save_pretrained(base_dir)
    model = Gemma3ForCausalLM.from_pretrained(base_dir)  # so the adapter names its base folder
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                                                  init_lora_weights=False))
    peft_model.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)  # as SFT saves it: no tokenizer.model beside the adapter
    write_json_atomic(adapter_dir / "run_config.json", {"schema_format": "compact"})
    return str(base_dir), str(adapter_dir)


@pytest.fixture(scope="module")
def exported(sentencepiece_base: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("export")
    base, adapter = tiny_gemma3_lora_student(root, sentencepiece_base)
    record = make_tiny_schema_record()
    write_jsonl_atomic(root / "d_02.jsonl", [record])
    rows = make_tiny_corpus(6)
    for row in rows:
        row["split"] = "test"
    write_jsonl_atomic(root / "d_05.jsonl", rows)
    args = ["--checkpoint", adapter, "--schemas", str(root / "d_02.jsonl"), "--verify-dataset",
            str(root / "d_05.jsonl"), "--verify-rows", "3", "--quant-types", "f16,q8_0", "--modelfile-gguf", "q8_0",
            "--max-new-tokens", "12", "--out-dir", str(root / "export")]
    done = run_export(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    return {"root": root, "base": base, "adapter": adapter, "out": root / "export", "args": args, "rows": rows,
            "schema_id": record["id"], "first_stdout": done.stdout}


@pytest.mark.slow
def test_the_export_folder_holds_every_artifact_with_its_sha256(exported: dict) -> None:
    out = exported["out"]
    for name in ("merged/config.json", "merged/tokenizer.model", "student-f16.gguf", "student-q8_0.gguf",
                 f"modelfiles/{exported['schema_id']}.Modelfile", f"schemas/{exported['schema_id']}.json",
                 "verification.json", "README.md"):
        assert (out / name).is_file(), name
    made_by = bundle.load_made_by(out)
    for name in ("student-f16.gguf", "student-q8_0.gguf", "merged/model.safetensors"):
        assert made_by["sha256"][name]["sha256"] == hashlib.sha256((out / name).read_bytes()).hexdigest()
    assert made_by["checkpoint"] == exported["adapter"] and made_by["tools"]["llama-cpp-python"]
    assert "FROM ../student-q8_0.gguf" in (out / "modelfiles" / f"{exported['schema_id']}.Modelfile").read_text()


@pytest.mark.slow
def test_the_merged_model_carries_the_adapter(exported: dict) -> None:
    from safetensors.torch import load_file

    merged = load_file(str(exported["out"] / "merged" / "model.safetensors"))
    base = load_file(str(Path(exported["base"]) / "model.safetensors"))
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(merged[name], base[name])  # the LoRA delta was folded in
    assert torch.equal(merged["model.layers.0.self_attn.k_proj.weight"], base["model.layers.0.self_attn.k_proj.weight"])


@pytest.mark.slow
def test_llama_cpp_decodes_the_f16_gguf_token_for_token_like_transformers(exported: dict) -> None:
    from ast_distill.llamacpp import LlamaCppGenerator
    from ast_distill.predict import load_generator

    reference = load_generator(exported["adapter"], "cpu")
    llama = LlamaCppGenerator(exported["out"] / "student-f16.gguf",
                              student.load_tokenizer(str(exported["out"] / "merged")))
    for row in exported["rows"][:2]:
        text = student.prompt_text(reference.tokenizer, row["prompt"])
        ids = reference.encode(text)
        assert len(ids) > 64  # past the 32-token sliding window: llama.cpp's windowed layers are exercised
        assert llama.encode(text) == ids
        [(_, expected)] = next(reference.generate_all([text], [None], batch_size=1, max_new_tokens=12,
                                                      progress=False))
        got, first_s = llama.generate_one(ids, None, max_new_tokens=12)
        assert got.token_ids == expected.token_ids and got.truncated == expected.truncated
        assert first_s is not None and first_s > 0
    report = json.loads((exported["out"] / "verification.json").read_text())
    assert report["rows"] == 3 and report["formats"]["f16"]["token_agreement"] == 1.0
    assert report["formats"]["f16"]["prompt_tokens_equal"] == 1.0 and "q8_0" in report["formats"]


@pytest.mark.slow
def test_a_rerun_keeps_the_export_and_a_failed_rebuild_leaves_it_whole(exported: dict) -> None:
    out = exported["out"]
    before = (out / "made_by.json").read_text()
    again = run_export(*exported["args"])
    assert again.returncode == 0 and "building" not in again.stdout + again.stderr
    assert (out / "made_by.json").read_text() == before
    # Another setting rebuilds; a disk that fills up during the rebuild leaves the old export as it was.
    code = ("import errno, sys; sys.argv = sys.argv[1:]; from ast_distill.export import llamacpp_tools as t\n"
            "def full(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device')\n"
            "t.quantize = full\nimport runpy; runpy.run_path(sys.argv[0], run_name='__main__')")
    failed = subprocess.run([sys.executable, "-c", code, EXPORT_SCRIPT, *exported["args"], "--verify-rows", "0"],
                            capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert failed.returncode == 2 and "No space left" in failed.stderr.strip().splitlines()[-1]
    assert (out / "made_by.json").read_text() == before and (out / "student-q8_0.gguf").is_file()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".export.building-")]


@pytest.mark.slow
def test_a_moved_export_still_loads_and_predicts_with_the_llamacpp_backend(exported: dict, tmp_path: Path) -> None:
    from ast_distill.predict import predict

    moved = tmp_path / "elsewhere"
    shutil.copytree(exported["out"], moved)
    schema = json.loads((moved / "schemas" / f"{exported['schema_id']}.json").read_text())["schema"]
    results = predict(str(moved / "student-q8_0.gguf"), schema, ["products above 20 euros", "toys"],
                      backend="llamacpp", max_new_tokens=12)
    assert [r["query"] for r in results] == ["products above 20 euros", "toys"]
    assert all(r["raw"] for r in results)  # it generated; a random tiny model's JSON need not finish in 12 tokens


@pytest.mark.slow
def test_evaluation_decodes_an_exported_gguf_with_llama_cpp_and_resumes_only_the_same_file(exported: dict,
                                                                                           tmp_path: Path) -> None:
    from ast_distill.config import load_config
    from ast_distill.evaluation import EvalSettings, run_evaluation

    out = exported["out"]
    root = exported["root"]

    def settings(gguf: Path) -> EvalSettings:
        return EvalSettings(dataset=str(root / "d_05.jsonl"), final_schemas=str(root / "d_02.jsonl"),
                            adapter=str(gguf), out_dir=str(tmp_path), eval_results=str(tmp_path / "results.jsonl"),
                            checkpoint_path=str(tmp_path / "results.checkpoint.json"), max_new_tokens=12,
                            gguf=str(gguf))

    summary = run_evaluation(settings(out / "student-f16.gguf"), load_config(), teacher=None)
    assert summary["backend"] == "llamacpp" and summary["n"] == len(exported["rows"])
    first = summary["fingerprint"]
    again = run_evaluation(settings(out / "student-q8_0.gguf"), load_config(), teacher=None)
    assert again["fingerprint"] != first  # another GGUF: its rows were decoded again, not resumed


@pytest.mark.slow
def test_the_export_runner_keeps_an_unchanged_export_and_names_a_missing_config(exported: dict) -> None:
    before = (exported["out"] / "made_by.json").read_text()
    done = subprocess.run(["bash", str(REPO_ROOT / "runExport.sh"), *exported["args"]], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert str(exported["out"]) in done.stdout and (exported["out"] / "made_by.json").read_text() == before
    missing = subprocess.run(["bash", str(REPO_ROOT / "runExport.sh"), "--config", "no/such.json"], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and missing.stderr.strip() == (
        "error: runExport.sh: config file 'no/such.json' does not exist")
