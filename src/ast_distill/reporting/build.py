"""The reports' driver: read the inputs, draw the plots, write report.md, alignment_report.md and the run
record."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..jsonl import write_json_atomic, write_text_atomic
from ..provenance import provenance as shared_provenance
from .alignment_report import render_alignment_report
from .inputs import ReportInputs, load_inputs
from .plots import draw_plots
from .training_report import render_report


def provenance(settings: Mapping[str, Any]) -> dict[str, Any]:
    """What made a report: the shared provenance block plus the plotting library's version."""
    import matplotlib

    made = shared_provenance(dict(settings))
    made["versions"]["matplotlib"] = matplotlib.__version__
    return made


def build_reports(inputs: ReportInputs, out_dir: Path, *, examples_per_cause: int = 3,
                  settings: Mapping[str, Any] | None = None) -> dict[str, Path]:
    """Read the inputs, draw the plots, write report.md (+ alignment_report.md when DPO or the boost ran); returns
    {name: path} of everything written. Raises UserError on bad or absent required input."""
    loaded = load_inputs(inputs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    made = provenance(settings or {})
    plots = draw_plots(loaded, out_dir)
    written: dict[str, Path] = {}
    report_path = out_dir / "report.md"
    write_text_atomic(report_path, render_report(inputs, loaded, plots, made, examples_per_cause))
    written["report"] = report_path
    if any(x is not None for x in (loaded.dpo_logs, loaded.dpo_summary, loaded.boost_logs, loaded.boost_summary)):
        alignment_path = out_dir / "alignment_report.md"
        write_text_atomic(alignment_path, render_alignment_report(inputs, loaded, plots, made))
        written["alignment_report"] = alignment_path
    run_path = out_dir / "report_run.json"
    write_json_atomic(run_path, {**made, "notes": loaded.notes})
    written["run_record"] = run_path
    written.update({name: path for name, path in plots.items() if path is not None})
    return written
