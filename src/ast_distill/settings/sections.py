"""The config sections: one dataclass per section of config/defaults.json, one field per key.

A field holds the key's type (its annotation), its default, and in its metadata (`setting`) the help text with
its unit, an optional flag name, a help group, a metavar and an optional `Range`. Everything else is made from
these fields: the loader's checks, config/defaults.json, the README tables and the scripts' flags. This module
is longer than the others because it is the data: every key of the pipeline, once; a new key is one field here.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from .types import (Optimizer, Range, SchemaFormat, Switch, TeacherBackend, TrainingBackend,
                    field_type, type_name)


def setting(default: Any, help: str, *, flag: str | None = None, group: str = "", metavar: str | None = None,
            limits: Range | None = None) -> Any:
    """A config key: its default, its one help text (with the unit), its flag name when not --kebab-key, its
    help group, the metavar --help shows when not the flag's name, and the range its values must be in (checked
    by `loader.check_ranges` where a stage resolves its settings)."""
    return field(default=default, metadata={"help": help, "flag": flag, "group": group, "metavar": metavar,
                                            "limits": limits})


def flag_name(f: dataclasses.Field) -> str:
    """The flag of a key: its own flag name, else --kebab-key."""
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


def _section(name: str, title: str) -> Any:
    """Name a section class and append a "Parameters" list, made from the field metadata, to its docstring."""
    def wrap(cls: type) -> type:
        cls = dataclass(cls)
        cls.SECTION = name
        cls.TITLE = title
        lines = [(cls.__doc__ or "").rstrip(), "", "    Parameters:"]
        group = None
        for f in dataclasses.fields(cls):
            if f.metadata["group"] != group:
                group = f.metadata["group"]
                lines += ["", f"        > {group}", ""]
            lines.append(f"        {f.name} (`{type_name(field_type(cls, f.name))}`, defaults to "
                         f"`{json.dumps(f.default)}`):")
            lines.append(f"            {f.metadata['help']}")
        cls.__doc__ = "\n".join(lines) + "\n"
        return cls
    return wrap


@_section("run", "which training")
class RunSettings:
    """
    Which training this is. A named training keeps every artifact under `outputs/<name>/` (see trainings.py),
    so several DSLs are trained and compared side by side.
    """

    name: str | None = setting(
        None, "the training's name (letters, digits, `.`, `_`, `-`): every path under `outputs/` moves to "
        "`outputs/<name>/`; null = the unnamed layout (`outputs/d_01...`)", group="naming")


@_section("teacher", "who writes and judges the data")
class TeacherSettings:
    """
    The teacher: the LLM (or the built-in grammar teacher) that writes the data in stages 1 and 3 and judges the
    student's outputs in stages 6 and 7.
    """

    backend: TeacherBackend = setting(
        "ollama", "`ollama` (the `ollama` client), `openai` (any OpenAI-compatible server: vLLM, llama.cpp, LM "
        "Studio) or `grammar` (the built-in teacher: no LLM, offline, deterministic for a seed)", group="backend")
    host: str | list[str] | None = setting(
        None, "where Ollama listens, or a list of servers to spread the requests over; null follows Ollama's own "
        "convention: the `OLLAMA_HOST` environment variable, else `http://127.0.0.1:11434`", group="backend")
    openai_base_url: str | list[str] | None = setting(
        None, "base URL of an OpenAI-compatible server (e.g. `http://127.0.0.1:8000/v1`), or a list of servers to "
        "spread the requests over", group="backend")
    openai_api_key_env: str = setting(
        "OPENAI_API_KEY", "environment variable holding its API key (unset = no key)", group="backend")
    timeout_s: float = setting(
        300.0, "seconds one request may take before it is retried", group="requests")
    concurrency: int = setting(
        4, "teacher requests in flight at once on each server (the async client); in stage 3 one schema each",
        group="requests",
        limits=Range(at_least=1))
    num_ctx: int | None = setting(
        None, "Ollama context size in tokens; null sizes it to each prompt plus room for the reply (Ollama's small "
        "default silently cuts long prompts)", group="requests")
    temperature: float = setting(
        0.7, "sampling temperature when writing data (judging always starts at 0)", group="requests")


@_section("dataset_generation", "stages 1 to 4")
class DatasetGenerationSettings:
    """
    Stages 1 to 4: domain prompts -> domain specs (d_01) -> JSON Schemas (d_02) -> (request, AST) rows (d_03) ->
    training corpus (d_04) and test set (d_05).
    """

    prompts_path: str = setting(
        "data/domain_prompts.jsonl", "domain prompts JSONL: one domain per line: name, description and a pool of "
        "candidate fields (the built-in teacher samples from it; an LLM teacher invents fields from the "
        "description)", flag="--prompts", group="inputs")
    base_schema_template: str = setting(
        "data/base_schema_template.json", "the DSL as a JSON Schema with `Field` and `Compare` left to fill per "
        "domain (the `__FIELD__`/`__COMPARE__` placeholders)", flag="--template", group="inputs")
    operator_catalog: str = setting(
        "data/operator_catalog.json", "the operator pool (JSON): value shape, field types, meaning and synonyms of "
        "each", group="inputs")
    user_schemas: list[str] | None = setting(
        None, "the user's own JSON Schema files (draft 7 or 2020-12): stage 1 derives one spec from each instead of "
        "reading the domain prompts, stage 2 passes each through (wrapped so a refusal stays valid); null = the "
        "project's DSLs built from the template", group="inputs")
    teacher_model: str = setting(
        "gpt-oss:120b", "the LLM teacher's model id (an empty string: `LLM_MODEL`, then `.llmrc`); ignored by the "
        "built-in teacher", group="teacher")
    examples_per_schema: int = setting(
        60, "example requests asked for inside each domain spec (context for pair generation: each pairs request "
        "shows 12 of them, shuffled by the seed, the next request the next 12, so all get used)", group="sizes",
        limits=Range(at_least=0))
    schemas_per_domain: int = setting(
        1, "schema variants per domain (other fields and operator names), each from its own spec: more DSLs to "
        "learn from", group="sizes", limits=Range(at_least=1))
    max_domains: int | None = setting(
        None, "use only the first N domains of the prompts file (null or -1 = all)", group="sizes")
    min_operators: int = setting(
        4, "fewest operators per schema, `eq` included (`eq` always, the rest sampled); each under one synonym "
        "chosen per schema, so the student must read the schema", group="sizes", limits=Range(at_least=1))
    max_operators: int = setting(
        7, "most operators per schema", group="sizes")
    seed: int = setting(
        11, "seed of every sampling choice in stages 1 to 4 (each schema's teacher seed derives from it and the "
        "schema id)", group="sizes")
    samples_per_schema: int = setting(
        60, "(query, AST) rows asked for per schema", group="sizes", limits=Range(at_least=1))
    samples_per_user_schema: int = setting(
        3000, "(query, AST) rows asked for per user schema (`user_schemas`): one DSL is all the student learns, so "
        "it gets about as many rows as the project's many schemas together", group="sizes", limits=Range(at_least=1))
    refusal_fraction: float = setting(
        0.15, "share of requests the schema cannot express (the answer is a refusal); every teacher, LLM ones "
        "included, is asked for this share", group="sizes", limits=Range(at_least=0, below=1))
    clarification_fraction: float = setting(
        0.06, "share of requests that are ambiguous or miss a value they need (a value left out, several fields "
        "that fit, a vague wish): the answer is a clarification, a question and the queries it could mean",
        group="sizes", limits=Range(at_least=0, below=1))
    context_fraction: float = setting(
        0.08, "share of requests that need their context (today's date, the user's usual values): half come with "
        "the context and are answered from it, half are the same words without it and get a clarification",
        group="sizes", limits=Range(at_least=0, below=1))
    teacher_retries: int = setting(
        3, "tries after the first when a teacher call fails or its reply does not parse or validate (-1 = forever)",
        group="teacher")
    teacher_retry_wait: float = setting(
        1.0, "seconds before the first retry, doubling after each", group="teacher")
    checkpoint_every: int = setting(
        20, "rows between two fsyncs of d_03 (a crash loses at most this many; a rerun resumes by id)",
        group="checkpointing", limits=Range(at_least=1))
    resume: bool = setting(
        True, "continue from what is on disk: d_01 keeps each spec made with the same teacher, model, seed, "
        "`examples_per_schema` and prompt (so the schema ids of d_02 stay those d_03's rows refer to), d_03 its "
        "rows; false starts over", group="checkpointing")
    include_invalid: bool = setting(
        True, "keep rows whose AST failed validation in d_03 (marked `is_valid: false`) and list them in "
        "`<d_04>.invalid.jsonl`; they never become training or test rows", group="splits")
    max_samples: int | None = setting(
        None, "cap on valid d_03 rows made into the corpus, a seeded sample (null or -1 = all)", group="splits")
    schema_format: SchemaFormat = setting(
        "compact", "how prompts show the schema: `compact` text (the project's DSL: every field, type, value and "
        "operator meaning; any other schema: one line per property path) or minified `json`", group="splits")
    heldout_schema_fraction: float = setting(
        0.2, "share of domains whose every schema is held out: test only, never trained on (unseen DSLs); at "
        "least one domain when above 0", group="splits", limits=Range(at_least=0, below=1))
    val_fraction: float = setting(
        0.05, "share of the seen-schema rows for `val` (eval_loss); the rest of the shares is `train`",
        group="splits", limits=Range(at_least=0, below=1))
    pref_fraction: float = setting(
        0.15, "share of the seen-schema rows for `pref` (the DPO pool)", group="splits",
        limits=Range(at_least=0, below=1))
    test_fraction: float = setting(
        0.1, "share of the seen-schema rows for `test` (d_05, beside the unseen-schema rows)", group="splits",
        limits=Range(at_least=0, below=1))
    schema_specs_out: str = setting(
        "outputs/d_01_domain_specs.jsonl", "d_01 JSONL: the domain specs (stage 1 writes it)",
        flag="--domain-specs", group="outputs")
    final_schemas_out: str = setting(
        "outputs/d_02_final_schemas.jsonl", "d_02 JSONL: the final JSON Schemas (stage 2 writes it)",
        flag="--schemas", group="outputs")
    dataset_out: str = setting(
        "outputs/d_03_dataset.jsonl", "d_03 JSONL: the (request, AST) rows (stage 3 writes it)", flag="--dataset",
        group="outputs")
    training_corpus_out: str = setting(
        "outputs/d_04_training_corpus.jsonl", "d_04 JSONL: the training corpus, `train`, `val` and `pref` rows "
        "(stage 4 writes it)", group="outputs")
    test_set_out: str = setting(
        "outputs/d_05_test_set.jsonl", "d_05 JSONL: the test set, seen- and unseen-schema rows (stage 4 writes it)",
        flag="--test-out", group="outputs")
    pretty_dir: str = setting(
        "outputs/pretty", "folder for indented copies of d_01 to d_05", group="outputs")


@_section("training", "SFT (stage 5)")
class TrainingSettings:
    """
    Stage 5: supervised fine-tuning of the student on the corpus's `train` rows (eval_loss on its `val` rows).
    """

    training_corpus: str = setting(
        "outputs/d_04_training_corpus.jsonl", "the corpus (d_04 JSONL); only `train` rows are trained on, `val` rows "
        "give eval_loss", group="inputs and outputs")
    output_dir: str = setting(
        "outputs/student_runs/gemma3-270m", "run folder: checkpoints, metrics, run_config.json",
        group="inputs and outputs")
    base_model: str = setting(
        "unsloth/gemma-3-270m-it", "a hub id or local folder (LoRA), or `scratch` (a small Gemma 3 with random "
        "weights and a tokenizer trained on the corpus, trained in full)", group="inputs and outputs")
    start_from: str | None = setting(
        None, "go on training from this trained checkpoint instead of `base_model` (a checkpoint dir or a run dir = "
        "its selected checkpoint): a full model trains on in full, a LoRA adapter is merged into its base and a new "
        "adapter trained on top; the boost step of runAlignment.sh sets it; null = start from `base_model`",
        group="inputs and outputs", metavar="DIR")
    backend: TrainingBackend = setting(
        "auto", "`unsloth` (CUDA), `hf` (transformers + PEFT + TRL, any device) or `auto` (unsloth when CUDA and "
        "unsloth are there)", group="inputs and outputs")
    seed: int = setting(
        3407, "seed of initialisation, shuffling and dropout", group="data")
    max_samples: int | None = setting(
        None, "cap on training rows (null = all)", group="data")
    max_seq_length: int = setting(
        32768, "token budget per example (prompt + completion); longer examples are dropped and counted, never cut",
        group="data", limits=Range(at_least=16, note=" tokens"))
    requests_per_sequence: int = setting(
        1, "chain up to N train requests of one schema into one conversation: the schema is read once, every "
        "answer is supervised (TRL `assistant_only_loss`); 1 = one request per example", group="data",
        limits=Range(at_least=1))
    batch_size: int = setting(
        4, "rows (sequences) per device batch", group="optimization", limits=Range(at_least=1))
    grad_accum: int = setting(
        4, "batches accumulated per optimizer step (effective batch = `batch_size` x `grad_accum`)",
        group="optimization", limits=Range(at_least=1))
    optimizer: Optimizer = setting(
        "adamw", "`adamw`, or `muon`: torch's Muon on the hidden weight matrices (attention and MLP) and AdamW, at "
        "`learning_rate`, on embeddings and norms; both follow the schedule", group="optimization")
    learning_rate: float = setting(
        5e-05, "peak learning rate (AdamW's; with `optimizer: muon`, that of embeddings and norms)",
        group="optimization", limits=Range(above=0))
    muon_learning_rate: float = setting(
        0.02, "with `optimizer: muon`: the peak learning rate of the hidden matrices", group="optimization",
        limits=Range(above=0))
    lr_scheduler_type: str = setting(
        "linear", "transformers learning-rate schedule: `linear`, `cosine`, `cosine_with_min_lr`, ...",
        group="optimization")
    min_lr_rate: float = setting(
        0.0, "with `lr_scheduler_type` `cosine_with_min_lr`: the final learning rate as a share of the peak (any "
        "other scheduler needs 0)", group="optimization", limits=Range(at_least=0, below=1))
    weight_decay: float = setting(
        0.01, "decoupled weight decay (AdamW, and Muon with `optimizer: muon`)", group="optimization")
    warmup_steps: int = setting(
        50, "linear warmup, in optimizer steps", group="optimization")
    max_steps: int = setting(
        3000, "stop after this many optimizer steps (-1: after `num_epochs`); an upper bound when `max_minutes` is "
        "set", group="schedule", limits=Range(above=0, negative_unset=True, note=", or -1/null to use num_epochs"))
    max_minutes: float = setting(
        0.0, "time budget of the training loop in minutes (0 = none): the step time is measured after the first "
        "step, and the schedule is fitted to end inside the budget (see [Fast path and time "
        "budget](#fast-path-and-time-budget))", group="schedule",
        limits=Range(at_least=0, note=" (0 = no time budget)"))
    num_epochs: float = setting(
        20.0, "epochs, used when `max_steps` is -1", group="schedule", limits=Range(above=0, finite=True))
    val_split: float = setting(
        0.05, "0 turns eval off; otherwise eval runs on the corpus's `val` rows (or this share of train if there "
        "are none)", group="schedule", limits=Range(at_least=0, below=1))
    eval_max_samples: int = setting(
        256, "cap on eval rows", group="schedule")
    eval_steps: int = setting(
        50, "evaluate (eval_loss and sample generations) every N steps", group="schedule", limits=Range(at_least=1))
    eval_accumulation_steps: int = setting(
        2, "move eval outputs off the device every N eval batches (memory; 0 = all at the end)",
        group="precision and memory")
    logging_steps: int = setting(
        10, "log train metrics every N steps", group="schedule", limits=Range(at_least=1))
    save_steps: int = setting(
        200, "write checkpoint-N every N steps (0 = never)", group="schedule")
    save_total_limit: int = setting(
        3, "keep at most N checkpoint-N folders (0 = keep all)", group="schedule")
    max_grad_norm: float = setting(
        1.0, "gradient clipping norm", group="optimization")
    early_stop_min_delta: float = setting(
        0.002, "eval_loss improvement (nats) that counts as progress", group="schedule")
    early_stop_patience: int = setting(
        2, "stop when eval_loss has not improved by `early_stop_min_delta` for this many evals (0 = never stop "
        "early)", group="schedule")
    load_in_4bit: bool = setting(
        True, "4-bit base weights (bitsandbytes, CUDA only; ignored with a note elsewhere)",
        group="precision and memory")
    bf16: Switch = setting(
        True, "bfloat16 mixed precision where it is measured faster on this machine (CUDA with bf16; a CPU whose "
        "bf16 matmul is at least as fast as fp32); `\"always\"` forces it (with a one-line warning where it is "
        "slower); false turns it off", group="precision and memory")
    torch_compile: Switch = setting(
        False, "true: compile where it pays (CUDA, or a CPU with fast bf16; on an AVX2-only CPU it gained 6.5% a "
        "step but its first step took minutes); `\"always\"` forces it. A compiled run pads every train batch to "
        "`max_seq_length`, drops a short last train batch, and evaluates one row at a time (one input shape each, "
        "so one compile of ~30 s on a fast CPU). Worth it when the chained conversations nearly fill "
        "`max_seq_length` (native-bf16 CPU: 800 steps in 339 s instead of 473 s)", group="precision and memory")
    use_gradient_checkpointing: bool = setting(
        False, "recompute activations to save memory", group="precision and memory")
    group_by_length: bool = setting(
        True, "batch examples of similar length together (less padding)", group="data")
    sample_generations: int = setting(
        3, "val prompts generated greedily at each eval and logged (parsed? valid?; 0 = none)", group="schedule")
    lora_r: int = setting(
        64, "LoRA rank (hub/local base models)", group="LoRA")
    lora_alpha: int = setting(
        128, "LoRA scaling numerator", group="LoRA")
    lora_dropout: float = setting(
        0.05, "dropout on the LoRA path", group="LoRA")
    lora_top_layers: int = setting(
        0, "adapt only the last N decoder layers (PEFT layers_to_transform); the backward pass then stops at the "
        "lowest adapted layer, so a step costs less; 0 = every layer", group="LoRA", metavar="N",
        limits=Range(at_least=0, note=" layers (0 = all)"))
    trim_vocabulary: int = setting(
        0, "pretrained student: keep only the base's N most frequent tokens, every token of the train and val "
        "conversations and the pieces those merge from (the tied LM head shrinks with them: faster on a CPU); the "
        "trimmed base is written to <output_dir>/base-trimmed-<digest>; 0 = the whole vocabulary", group="LoRA",
        metavar="N", limits=Range(at_least=0, note=" tokens (0 = no trimming)"))
    scratch_hidden_size: int = setting(
        192, "scratch student: model width (hidden size)", group="scratch student")
    scratch_num_layers: int = setting(
        4, "scratch student: transformer layers", group="scratch student")
    scratch_num_heads: int = setting(
        4, "scratch student: attention heads", group="scratch student")
    scratch_num_kv_heads: int = setting(
        2, "scratch student: key/value heads", group="scratch student")
    scratch_head_dim: int = setting(
        48, "scratch student: width of one attention head", group="scratch student")
    scratch_intermediate_size: int = setting(
        768, "scratch student: MLP width", group="scratch student")
    scratch_vocab_size: int = setting(
        2048, "scratch student: BPE vocabulary size, in tokens", group="scratch student")
    scratch_rope_theta: int = setting(
        10000, "scratch student: rotary position base of every layer (Gemma 3's global layers use 1e6, made for "
        "128k contexts; over a few hundred tokens 1e4 keeps positions sharp: eval_loss 1.03 vs 1.12 after 400 "
        "steps)", group="scratch student")
    torch_threads: int = setting(
        0, "CPU threads for torch (0 = torch's default)", group="precision and memory")


@_section("evaluation", "stage 6")
class EvaluationSettings:
    """
    Stage 6: the student generates for each row, its output is scored and the teacher judges outputs whose
    meaning differs from the gold AST.
    """

    dataset: str = setting(
        "outputs/d_05_test_set.jsonl", "rows to evaluate, d_05 or d_04 shaped JSONL", group="inputs")
    final_schemas: str = setting(
        "outputs/d_02_final_schemas.jsonl", "the d_02 schemas file the rows refer to", flag="--schemas",
        group="inputs", metavar="FILE")
    adapter: str | None = setting(
        None, "the student to evaluate: a checkpoint dir (a LoRA adapter or a full model folder) or a training "
        "run dir, which means its selected checkpoint (checkpoint-best from the sweep, else checkpoint-final)",
        group="inputs")
    out_dir: str = setting(
        "outputs/student_runs/eval", "folder for evaluation_results.jsonl and evaluation_summary.json",
        group="outputs")
    teacher_model: str | None = setting(
        None, "judge model (null: `dataset_generation.teacher_model`, then `LLM_MODEL`, then `.llmrc`: the same "
        "rule as for generating; the preflight check tests this model; the built-in teacher needs none)",
        group="judge")
    max_new_tokens: int = setting(
        256, "token budget per output; an output that reaches it is `truncated`", group="decoding",
        limits=Range(at_least=1))
    temperature: float = setting(
        0.0, "sampling temperature (0 = greedy)", group="decoding", limits=Range(at_least=0))
    top_p: float = setting(
        1.0, "nucleus sampling mass when temperature > 0 (1.0 = off)", group="decoding",
        limits=Range(above=0, at_most=1))
    batch_size: int = setting(
        16, "prompts generated together (left padding, length-sorted)", group="decoding", limits=Range(at_least=1))
    max_samples: int | None = setting(
        None, "evaluate a seeded random subset of at most this many rows (null or -1 = all)", group="inputs")
    sample_seed: int = setting(
        0, "seed of that subset and of sampling", group="inputs")
    include_invalid: bool = setting(
        False, "also evaluate rows whose gold AST is invalid", group="inputs")
    constrained: bool = setting(
        True, "schema-constrained decoding: the row's JSON Schema as a grammar (xgrammar)", group="decoding")
    truncation_retry: float = setting(
        2.0, "a constrained output that reaches `max_new_tokens` is generated once more with this many times the "
        "budget, so a long but right answer is not scored as a failure (1 = no retry); rows retried are counted "
        "(`retried_rate`), and `truncated` then means truncated after the retry", group="decoding",
        limits=Range(at_least=1))
    dynamic_int8: bool = setting(
        False, "CPU only: decode with every linear layer's weights quantized to int8 (quantize_dynamic); ~2x "
        "faster for the Gemma student on an AVX2 CPU, but the outputs change, so the scores are the int8 model's",
        group="decoding")
    teacher_retries: int = setting(
        3, "judge retries per failed teacher call (-1 = forever)", group="judge")
    teacher_retry_wait: float = setting(
        1.0, "seconds before the first judge retry, doubling after each", group="judge")
    checkpoint_every: int = setting(
        50, "fsync the results and update the progress checkpoint every N rows", group="outputs")
    resume: bool = setting(
        True, "resume by id when the checkpoint's fingerprint, the decoding settings and the selected rows are "
        "those the results were made with, else start over, saying which differ; false always starts over (which "
        "also judges rows whose verdict is `error` again)", group="outputs")


@_section("sweep", "checkpoint selection, after SFT, DPO and the boost")
class SweepSettings:
    """
    The checkpoint sweep: every kept checkpoint-N of a run and its checkpoint-final are scored on `val` rows
    (seen schemas, never test rows) with the evaluation's decoding and judge, ranked by semantic pass rate, then
    schema-valid rate, then eval_loss, and the winner is copied to `checkpoint-best`, which every later stage
    uses when it is given the run dir. runTraining.sh and runAlignment.sh run it after training.
    """

    enabled: bool = setting(
        True, "run the sweep after SFT, DPO and the boost in the runners (false: stages use checkpoint-final, and alignment keeps the last method trained)",
        group="selection")
    dataset: str | None = setting(
        None, "rows to score (null: `training.training_corpus`); only its `val` rows are used", group="inputs")
    max_samples: int | None = setting(
        100, "val rows scored per checkpoint, a seeded sample (`evaluation.sample_seed`; null = all)",
        group="selection", limits=Range(at_least=1, note=" (null = all)"))
    top_k: int | None = setting(
        None, "after the sweep keep only the K best checkpoint-N folders on disk (null = keep all; the newest, "
        "which training resumes from, is always kept)", group="selection", limits=Range(at_least=1))


@_section("alignment", "stages 7 and 8")
class AlignmentSettings:
    """
    Stages 7 and 8: DPO pairs from the teacher's verdicts on the SFT student's `pref` rows, and DPO training.
    """

    eval_results: str = setting(
        "outputs/student_runs/alignment/pref_eval/evaluation_results.jsonl", "the SFT student's per-row evaluation "
        "on the `pref` rows (never test rows), with teacher verdicts", group="pairs (stage 7)")
    eval_summary: str = setting(
        "outputs/student_runs/alignment/pref_eval/evaluation_summary.json", "the summary of that evaluation",
        group="pairs (stage 7)")
    pairs_out: str = setting(
        "outputs/student_runs/alignment/dpo_pairs.jsonl", "chosen/rejected pairs JSONL (stage 7 writes it, "
        "stage 8 trains on it)", flag="--pairs", group="inputs and outputs")
    adapter: str = setting(
        "outputs/student_runs/gemma3-270m", "the SFT result DPO starts from: a checkpoint dir (a LoRA adapter or a "
        "full model folder) or the SFT run dir, meaning its selected checkpoint (checkpoint-best, else "
        "checkpoint-final); its chat template renders each pair's prompt", group="inputs and outputs")
    output_dir: str = setting(
        "outputs/student_runs/gemma3-270m-dpo", "run folder of the aligned student: checkpoints, metrics, "
        "run_config.json", group="inputs and outputs")
    base_model: str | None = setting(
        "unsloth/gemma-3-270m-it", "base the SFT adapter is merged into, overriding the one the adapter records "
        "(e.g. a local copy of a hub model; it must have the same vocabulary); null or `scratch` = the recorded "
        "base (a trimmed base, the scratch student)", group="inputs and outputs")
    pref_max_samples: int | None = setting(
        None, "cap on `pref` rows evaluated (null = all)", group="pairs (stage 7)")
    only_rejected: bool = setting(
        True, "keep only rows the teacher rejected", group="pairs (stage 7)")
    max_pairs: int | None = setting(
        None, "keep at most N pairs, a seeded random subset (null = all)", group="pairs (stage 7)",
        limits=Range(at_least=0, note=" (null = all)"))
    max_seq_length: int = setting(
        32768, "token budget per prompt + completion (as SFT); longer pairs are dropped and counted",
        group="precision and memory", limits=Range(at_least=16, note=" tokens"))
    batch_size: int = setting(
        2, "pairs per device batch", group="schedule", limits=Range(at_least=1))
    grad_accum: int = setting(
        8, "batches per optimizer step", group="schedule", limits=Range(at_least=1))
    learning_rate: float = setting(
        5e-06, "peak learning rate (linear decay)", group="schedule", limits=Range(above=0))
    warmup_steps: int = setting(
        50, "linear warmup, in optimizer steps", group="schedule", limits=Range(at_least=0))
    max_steps: int = setting(
        500, "optimizer steps (-1 = one pass over the pairs); an upper bound when `max_minutes` is set",
        group="schedule", limits=Range(above=0, negative_unset=True, note=", or -1/null for one pass"))
    max_minutes: float = setting(
        0.0, "time budget of the DPO loop in minutes, as `training.max_minutes` (0 = none)", group="schedule",
        limits=Range(at_least=0, note=" (0 = no time budget)"))
    logging_steps: int = setting(
        10, "log loss and rewards/* every N steps", group="schedule", limits=Range(at_least=1))
    save_steps: int = setting(
        100, "write checkpoint-N every N steps (0 = never)", group="schedule",
        limits=Range(at_least=0, note=" (0 = no checkpoint-N)"))
    save_total_limit: int = setting(
        3, "keep at most N checkpoint-N folders (0 = keep all)", group="schedule")
    beta: float = setting(
        0.1, "DPO strength: how far the policy may move from the reference (higher = stay closer to the SFT "
        "model)", group="DPO", limits=Range(above=0))
    lora_r: int = setting(
        64, "rank of the new DPO adapter (LoRA students)", group="LoRA")
    lora_alpha: int = setting(
        128, "LoRA scaling numerator", group="LoRA")
    lora_dropout: float = setting(
        0.05, "dropout on the LoRA path", group="LoRA")
    load_in_4bit: bool = setting(
        True, "4-bit base weights, as SFT", group="precision and memory")
    bf16: Switch = setting(
        True, "bfloat16 mixed precision, measured as for SFT (`\"always\"` forces it, false turns it off)",
        group="precision and memory")
    seed: int = setting(
        3407, "seed of initialisation, data order and the `max_pairs` subset", group="schedule")


@_section("boost", "failure-focused boost, beside DPO in stage 8")
class BoostSettings:
    """
    The other way to learn from the SFT student's mistakes on the `pref` rows: the teacher writes new rows aimed at
    what failed (the fields, operators, clauses and refusals of the failing rows, on the schemas they failed on,
    never on unseen schemas and never repeating a request of the dataset), and SFT goes on from the selected
    checkpoint on the train rows plus those rows for a short run. runAlignment.sh runs it beside DPO, evaluates
    both on the same d_05 rows and keeps the one that scores higher on the `val` rows.
    """

    enabled: bool = setting(
        True, "run the boost in runAlignment.sh (false: DPO only)", group="selection")
    rows_per_failure: int = setting(
        4, "new rows asked for per failed `pref` row of a schema", group="rows", limits=Range(at_least=1))
    max_rows: int | None = setting(
        None, "cap on the new rows over all schemas (null = no cap)", group="rows",
        limits=Range(at_least=1, note=" (null = no cap)"))
    candidates_per_row: int = setting(
        8, "built-in teacher: requests sampled per row kept (it keeps those aimed at a failure); an LLM teacher is "
        "asked for twice the rows, naming the failures", group="rows", limits=Range(at_least=1))
    replay_ratio: float | None = setting(
        None, "train rows of the corpus kept in the boost corpus per new row, a seeded sample (a higher share of new "
        "rows); null = every train row (on the offline scratch run, 1.0 broke 19 of 600 test rows: the new rows "
        "hold few refusals, and refusal recall fell from 0.20 to 0.09)", group="rows",
        limits=Range(at_least=0, note=" (null = every train row)"))
    seed: int = setting(
        29, "seed of the new rows (each schema's derives from it; other than the dataset's, so the rows are new)",
        group="rows")
    rows_out: str = setting(
        "outputs/student_runs/alignment/boost_rows.jsonl", "the new rows, d_03-shaped and validated, with the "
        "failure each aims at", group="inputs and outputs")
    corpus_out: str = setting(
        "outputs/student_runs/alignment/boost_corpus.jsonl", "the boost run's corpus: the new rows and the replayed "
        "train rows as `train` rows, and the d_04 corpus's other rows (its `val` rows give eval_loss)", group="inputs and outputs")
    output_dir: str = setting(
        "outputs/student_runs/gemma3-270m-boost", "run folder of the boosted student", group="inputs and outputs")
    max_steps: int = setting(
        100, "optimizer steps of the boost run; an upper bound when `max_minutes` is set", group="schedule",
        limits=Range(above=0))
    max_minutes: float = setting(
        0.0, "time budget of the boost run in minutes, as `training.max_minutes` (0 = none)", group="schedule",
        limits=Range(at_least=0, note=" (0 = no time budget)"))
    learning_rate: float | None = setting(
        None, "peak learning rate of the boost run (null: `training.learning_rate`; Muon's is scaled by the same "
        "factor)", group="schedule", limits=Range(above=0))
    warmup_steps: int = setting(
        10, "linear warmup of the boost run, in optimizer steps", group="schedule", limits=Range(at_least=0))


@_section("reporting", "stage 9")
class ReportingSettings:
    """
    Stage 9: Markdown reports and plots from the training metrics and evaluations.
    """

    out_dir: str = setting(
        "outputs/reports/gemma-3-270m-it", "folder for report.md, alignment_report.md and the plots",
        group="outputs")
    examples_per_cause: int = setting(
        3, "failure examples shown per cause in report.md, in rows", group="outputs", limits=Range(at_least=0))


@_section("export", "stage 10")
class ExportSettings:
    """
    Stage 10: ship the student. The checkpoint's LoRA is merged into its base (``merged/``), converted to GGUF
    and quantized by llama.cpp's own tools, an Ollama Modelfile is written per schema, and each GGUF is checked
    against the transformers student on test rows.
    """

    checkpoint: str | None = setting(
        None, "the checkpoint to export, a LoRA adapter or a full model folder, or a run dir (its selected "
        "checkpoint) (null: the student alignment chose, SFT, DPO or boost, recorded in `aligned.json` beside "
        "`alignment.pairs_out`; without one the DPO student's selected checkpoint when complete, else the SFT "
        "student's)", group="inputs")
    final_schemas: str = setting(
        "outputs/d_02_final_schemas.jsonl", "the d_02 schemas file: the Modelfiles' schemas and the verified rows'",
        flag="--schemas", group="inputs", metavar="FILE")
    out_dir: str | None = setting(
        None, "export folder (null: `export` beside the checkpoint, in its run folder)", group="outputs")
    quant_types: str = setting(
        "f16,q8_0,q4_k_m", "GGUF types to write, comma-separated: f32, f16 or bf16 (the converter) or any type "
        "llama.cpp's quantizer knows (q8_0, q4_k_m, q5_k_m, ...)", group="outputs", metavar="TYPES")
    modelfile_gguf: str = setting(
        "q4_k_m", "the GGUF type the Modelfiles load (one of quant_types)", group="outputs", metavar="TYPE")
    modelfile_schemas: str | None = setting(
        None, "schema ids to write a Modelfile for, comma-separated (null: every schema of the schemas file)",
        group="outputs", metavar="IDS")
    verify_dataset: str = setting(
        "outputs/d_05_test_set.jsonl", "rows the GGUFs are checked on (d_05 or d_04 shaped JSONL)",
        group="verification", metavar="FILE")
    verify_rows: int = setting(
        100, "rows to check each GGUF on, a seeded sample (0 = no check)", group="verification",
        limits=Range(at_least=0))
    max_new_tokens: int = setting(
        256, "token budget per output, also what num_ctx leaves room for", group="verification",
        limits=Range(at_least=1))
    batch_size: int = setting(
        16, "rows the transformers reference decodes together", group="verification", limits=Range(at_least=1))
    n_ctx: int = setting(
        2048, "llama.cpp context in tokens for the check (prompt + new tokens)", group="verification",
        limits=Range(at_least=64))


@_section("gate", "the quality gate, after evaluation")
class GateSettings:
    """
    The quality gate: the student's evaluation summary against minimum rates and against the previous run of
    the same checkpoint path on the same rows; `run_health.json` says what passed, and runAll.sh exits 1 when a
    check fails. A minimum left null is not checked.
    """

    eval_summary: str | None = setting(
        None, "the evaluation summary to check (null: `evaluation.out_dir`/evaluation_summary.json; runAll.sh "
        "passes the aligned student's, SFT, DPO or boost, when it ran alignment)", group="inputs")
    history: str | None = setting(
        None, "the run history, one JSONL line per gated run (null: `reporting.out_dir`/run_history.jsonl)",
        group="outputs")
    min_semantic_pass_seen: float | None = setting(
        None, "lowest semantic pass rate on seen schemas, a share in [0, 1]", group="minimums",
        limits=Range(at_least=0, at_most=1))
    min_semantic_pass_unseen: float | None = setting(
        None, "lowest semantic pass rate on unseen schemas, a share in [0, 1]", group="minimums",
        limits=Range(at_least=0, at_most=1))
    min_query_semantic_match: float | None = setting(
        None, "lowest semantic match on query rows alone (refusals left out), a share in [0, 1]",
        group="minimums", limits=Range(at_least=0, at_most=1))
    min_schema_valid: float | None = setting(
        None, "lowest schema-valid rate, a share in [0, 1]", group="minimums", limits=Range(at_least=0, at_most=1))
    min_refusal_recall: float | None = setting(
        None, "lowest share of gold refusals the student refused, in [0, 1]", group="minimums",
        limits=Range(at_least=0, at_most=1))
    max_drop: float | None = setting(
        0.1, "largest fall of semantic pass (seen, unseen), query semantic match or schema validity against the "
        "previous run, in absolute rate (null = no regression check; on 160 rows one row is 0.006 and run-to-run "
        "noise is a few hundredths)", group="regression", limits=Range(at_least=0, at_most=1))


SECTIONS: dict[str, type] = {cls.SECTION: cls for cls in (
    RunSettings, TeacherSettings, DatasetGenerationSettings, TrainingSettings, EvaluationSettings, SweepSettings,
    AlignmentSettings, BoostSettings, ReportingSettings, ExportSettings, GateSettings)}


@dataclass
class Settings:
    """
    Every setting of the pipeline, one attribute per config section (config/defaults.json's sections).

    Parameters:
        run (`RunSettings`): which training.
        teacher (`TeacherSettings`): who writes and judges the data.
        dataset_generation (`DatasetGenerationSettings`): stages 1 to 4.
        training (`TrainingSettings`): SFT (stage 5).
        evaluation (`EvaluationSettings`): stage 6.
        sweep (`SweepSettings`): checkpoint selection, after SFT, DPO and the boost.
        alignment (`AlignmentSettings`): stages 7 and 8.
        boost (`BoostSettings`): failure-focused boost, beside DPO in stage 8.
        reporting (`ReportingSettings`): stage 9.
        export (`ExportSettings`): stage 10.
        gate (`GateSettings`): the quality gate, after evaluation.
    """

    run: RunSettings = field(default_factory=RunSettings)
    teacher: TeacherSettings = field(default_factory=TeacherSettings)
    dataset_generation: DatasetGenerationSettings = field(default_factory=DatasetGenerationSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    sweep: SweepSettings = field(default_factory=SweepSettings)
    alignment: AlignmentSettings = field(default_factory=AlignmentSettings)
    boost: BoostSettings = field(default_factory=BoostSettings)
    reporting: ReportingSettings = field(default_factory=ReportingSettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    gate: GateSettings = field(default_factory=GateSettings)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """{section: {key: value}}, in defaults.json's order (what config.load_config returns)."""
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}
