"""An analysis from start to finish: the one lifecycle (AnalysisRun), the step per input, which mode suits an event."""
