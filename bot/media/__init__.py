"""Media files: downloads, result and input image checks, video fitting."""


def megabytes(size: int) -> str:
    """A byte count as members read it: 31457280 -> '30.0 MB' (1 MB = 1024 * 1024 bytes)."""
    return f"{size / (1024 * 1024):.1f} MB"
