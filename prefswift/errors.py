"""Errors prefswift shows to users as one clear line (never a traceback)."""


class PrefswiftError(Exception):
    """A user-facing error: the CLI prints `error: <message>` and exits with code 2."""


class ArgumentError(PrefswiftError):
    """Bad command line / config file argument."""


class DataError(PrefswiftError):
    """Bad input data. Build messages with `data_error` so they name file, row and field."""


def data_error(source: str, row, field: str, problem: str, fix: str = "") -> DataError:
    """`source` is a file path or dataset name; `row` is the 0-based row index (or None for the whole file)."""
    where = source if row is None else f"{source}, row {row}"
    msg = f"{where}, field '{field}': {problem}" if field else f"{where}: {problem}"
    if fix:
        msg += f" — {fix}"
    return DataError(msg)


def did_you_mean(name: str, known, *, cutoff: float = 0.5, show=str) -> str:
    """' (did you mean X?)' for the known name closest to `name`, or '' when none is close. `show` formats X."""
    import difflib

    close = difflib.get_close_matches(str(name).lower(), [str(k) for k in known], n=1, cutoff=cutoff)
    if not close:
        close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=cutoff)
    return f" (did you mean {show(close[0])}?)" if close else ""


def unknown_name(kind: str, name: str, known, help_hint: str) -> ArgumentError:
    """The one "unknown <kind>" error of every registry: the closest match and where to see them all."""
    return ArgumentError(f"unknown {kind} {name!r}{did_you_mean(name, known)}; {help_hint}")
