"""Stage 5, supervised fine-tuning of the student on the d_04 corpus: ``data`` (rows, lengths, chaining,
padding), ``trainer`` (TRL's SFTTrainer, its config, sample generations), ``stage`` (``train_sft``: the
stage from settings to checkpoint-final, and ``measure_sft_throughput`` for the benchmark). The student
itself is built by ``ast_distill.student``; run dirs and checkpoints follow ``ast_distill.runs``."""
from .stage import measure_sft_throughput, train_sft

__all__ = ["measure_sft_throughput", "train_sft"]
