"""Alignment: DPO pairs from the teacher's verdicts on the SFT student (``pairs``: ``write_pairs``), and DPO
training on them (``dpo``: ``train_dpo``)."""
from .dpo import train_dpo
from .pairs import write_pairs

__all__ = ["train_dpo", "write_pairs"]
