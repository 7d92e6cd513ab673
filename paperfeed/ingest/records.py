"""What parsers yield: normalised papers, or rejections that name file and line."""

from __future__ import annotations

from dataclasses import dataclass

from paperfeed.models import Paper


class InputError(Exception):
    """A whole input cannot be read (missing, empty, binary, a directory): one line for the user."""


@dataclass(slots=True)
class Rejection:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def check_text(field: str, value: object, *, required: bool = False) -> str:
    """Validate one text field; raise ValueError with a message fit for the user."""
    if value is None:
        if required:
            raise ValueError(f"missing {field}")
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise ValueError(f"empty {field}")
    if "\x00" in value:
        raise ValueError(f"NUL byte in {field}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"invalid Unicode (lone surrogate) in {field}") from e
    return value


def check_list(field: str, value: object) -> list[str]:
    """A list of names: a JSON list of strings, or one string separated by ';' or ','."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        check_text(field, value)
        sep = ";" if ";" in value else ","
        return [v.strip() for v in value.split(sep) if v.strip()]
    if isinstance(value, list):
        out = []
        for v in value:
            if not isinstance(v, str):
                raise ValueError(f"{field} must be a list of strings")
            check_text(field, v)
            if v.strip():
                out.append(v.strip())
        return out
    raise ValueError(f"{field} must be a list of strings or a string, got {type(value).__name__}")


def make_paper(**kw: object) -> Paper:
    return Paper(**kw)  # type: ignore[arg-type]
