"""Evaluation: pure metrics, the resumable eval loop, the report (table, summary, plots).

`caspo-lite eval` = `runner.iter_eval` (problems.jsonl, resumable) + `runner.write_outputs`
(summary.json, report.md, PNGs). Metric names are listed once in docs/metrics.md.
"""
