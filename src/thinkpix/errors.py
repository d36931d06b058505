"""User-facing errors. The CLI prints these as one line and exits non-zero (never a traceback)."""


class ThinkpixError(Exception):
    """An error caused by user input (a file, a flag, a config). Message names the file and line."""


def located(path, line: int | None, message: str) -> ThinkpixError:
    """Build an error that names `path` (and `line`, 1-based, when known)."""
    where = f"{path}:{line}" if line is not None else f"{path}"
    return ThinkpixError(f"{where}: {message}")
