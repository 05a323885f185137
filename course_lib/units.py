"""Byte units as the course counts them: binary (KiB, MiB, GiB), as `du -h` and GPU memory tools do."""

MIB = 1024**2
GIB = 1024**3


def human_size(size_bytes: int) -> str:
    """1536 -> '1.5 KiB': binary units, as `du -h` and GPU memory tools count."""
    value = float(size_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
