"""BDA workbench core: imagery, detectors, heatmaps, findings, reports. Never imports streamlit."""

__version__ = "0.1.0"
