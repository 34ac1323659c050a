"""Rows whose target is not one class per text: numbers (regression), label sets
(multi-label). The row's fit, its measures and the sweep's choice among such rows; the task's
own head, report and resampled metrics are ``probe.heads.tasks``."""
