"""Fitting detectors: training data, objectives, synthetic anomalies, training, area fits, evaluation, jobs."""
