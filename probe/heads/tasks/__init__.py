"""One module per task type: a head estimator, its report and the resampled metrics the
research layer's intervals use."""
