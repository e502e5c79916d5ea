"""What free text the API stores may contain: one rule for every name.

Usernames, strategy names and client order ids are shown back to people and
written to logs. A NUL byte, a line break, or a bidirectional override
(U+202E makes ``gpj.exe`` read as ``exe.jpg``) in them would corrupt logs or
spoof what someone sees, so control, format (bidi overrides and isolates,
zero-width characters), surrogate and line/paragraph separator characters are
refused, whatever the field. Each caller keeps its own length and alphabet
rules; this is the floor they share.
"""

from __future__ import annotations

import unicodedata

from graphql_api.platform.errors import ErrorCode, UserError

# Cc control, Cf format (bidi, zero-width), Cs lone surrogates, Zl/Zp separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def forbidden_character(text: str) -> str | None:
    """The first character ``text`` may not contain, as ``U+XXXX``, or None."""
    for char in text:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            return f"U+{ord(char):04X}"
    return None


def check_name(field: str, value: str, *, max_length: int) -> list[UserError]:
    """Problems with a stored name: 1 to ``max_length`` characters once trimmed, no
    invisible or control characters. Empty when the name is fine."""
    errors: list[UserError] = []
    if not 1 <= len(value.strip()) <= max_length:
        errors.append(
            UserError(
                field, ErrorCode.OUT_OF_RANGE, f"{field} must be 1 to {max_length} characters"
            )
        )
    bad = forbidden_character(value)
    if bad is not None:
        errors.append(
            UserError(
                field,
                ErrorCode.INVALID,
                f"{field} must not contain control or invisible formatting characters ({bad})",
            )
        )
    return errors
