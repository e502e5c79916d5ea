"""The README is the user's manual: every setting must be in its configuration table."""

from __future__ import annotations

from pathlib import Path

from graphql_api.platform.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_documented() -> None:
    text = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = {
        line.split("|")[1].strip().strip("`")
        for line in text.splitlines()
        if line.startswith("| `")
    }
    variables = {field.alias for field in Settings.model_fields.values()}
    assert variables - documented == set(), "settings missing from the README table"
    assert documented - variables == set(), "README documents settings that do not exist"


def test_every_graphql_example_is_valid_against_the_schema() -> None:
    import re

    from graphql import parse, validate

    from schema import schema

    blocks = re.findall(r"```graphql\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 8
    for block in blocks:
        errors = validate(schema._schema, parse(block))
        assert errors == [], (block, errors)
