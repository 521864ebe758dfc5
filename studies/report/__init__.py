"""The study report: what a finished study's results table says.

``studies.report.analysis`` holds the statistics (tolerance index, Pareto fronts, importances,
rank correlations, variance decomposition, claims); it reads a results table and writes nothing.
It depends on ``studies.results`` (the table's columns), ``studies.spec.claims`` and the spec.
"""
