"""The interactive web map of an analysis: overlays warped to Web Mercator, offline Leaflet, findings layers."""
