"""From pixels to graded findings: the detector, tiling, the scene pipeline, heatmaps, calibration, grading."""
