"""Evaluation: accuracy with intervals, pass@k, maj@k, inference-scaling curves, plots, report.

metrics   statistics (bootstrap interval, pass@k, maj@k)
evaluate  `t1 eval` and `evaluate()` for trainers
scaling   `t1 scale`: accuracy against a thinking budget by truncation
plots     matplotlib figures, each with the CSV of its data
report    `t1 report RUN_DIR`: a static report.html
"""
