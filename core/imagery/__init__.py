"""Readers of everything an analyst brings (GeoTIFF/COG, photos with EXIF/XMP GPS, xBD tiles) as one Scene."""
