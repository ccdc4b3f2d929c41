"""Media files: downloads, result and input image checks, video fitting."""
