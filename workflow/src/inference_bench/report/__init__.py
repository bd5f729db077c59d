"""The report stage (workflow/rules/report.smk): results made into what a reader sees. The summary of a
model's results (aggregate.py) with its roofline bounds and targets, the tables, charts and README drawn from
summaries, the regression verdict between two runs, and the provenance that says when a table is stale.

May import every other part of the package; nothing imports it but the toolkit and the workflow.
"""
