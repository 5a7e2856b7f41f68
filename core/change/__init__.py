"""Pre/post change detection: pairing pre with post images, co-registration, the detector's change map."""
