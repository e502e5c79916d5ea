"""No NUL characters in text arguments.

PostgreSQL cannot store or even compare text holding U+0000 (asyncpg refuses
the parameter), so a NUL in any string argument, a symbol code, a search, a
client order id, a JSON key, reached the database as an internal error. No
input of this API has a use for it: it is refused once, during validation,
for literals in the document and for every string in the variables.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError, StringValueNode, ValidationContext, ValidationRule
from strawberry.extensions import SchemaExtension

NUL = "\x00"
MESSAGE = "text arguments may not contain the NUL character (U+0000)"


def holds_nul(value: Any) -> bool:
    """Whether a variable value (JSON: strings, lists, objects) holds a NUL anywhere."""
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(holds_nul(key) or holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(holds_nul(item) for item in value)
    return False


def _refusal() -> GraphQLError:
    return GraphQLError(MESSAGE, extensions={"code": "BAD_USER_INPUT"})


class NulInDocument(ValidationRule):
    """A NUL in a string literal of the document.

    One class for every request, whose outcome depends on the document alone: the
    document cache keeps validation results per document and set of rules, and a
    class made per request would be a new set of rules each time.
    """

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.reported = False

    def enter_string_value(self, node: StringValueNode, *_args: Any) -> None:
        if NUL in node.value and not self.reported:
            self.reported = True
            self.report_error(_refusal())


class NulInVariables(NulInDocument):
    """The variables hold a NUL: refused once, first, and literals not reported again."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.reported = True
        context.report_error(_refusal())


def nul_rule(variables: Any) -> type[NulInDocument]:
    """The rule a request's validation runs: :class:`NulInVariables` refuses it."""
    return NulInVariables if holds_nul(variables) else NulInDocument


class RefuseNulCharacters(SchemaExtension):
    def on_validate(self) -> Iterator[None]:
        rule = nul_rule(self.execution_context.variables)
        self.execution_context.validation_rules = (
            *self.execution_context.validation_rules,
            rule,
        )
        yield
