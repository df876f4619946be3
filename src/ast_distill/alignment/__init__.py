"""Alignment, learning from the SFT student's mistakes on the pref rows: DPO pairs from the teacher's verdicts
(``pairs``: ``write_pairs``) and DPO training on them (``dpo``: ``train_dpo``); the failure-focused boost (``boost``:
``build_boost_rows``, ``boost_training_settings``); and which student the stage ends with (``choice``)."""
from .dpo import train_dpo
from .pairs import write_pairs

__all__ = ["train_dpo", "write_pairs"]
