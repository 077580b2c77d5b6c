# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A role README's variables table, generated from the role's meta/argument_specs.yml (shared by the role tests).

Each role test checks that the table between BEGIN and END in its README equals :func:`table`, and rewrites it
with ``--write-readme``.
"""

from __future__ import annotations

import json
import re

import yaml

BEGIN, END = "<!-- BEGIN argument_specs (generated) -->", "<!-- END argument_specs -->"


def spec(role):
    return yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]


def markup(text):
    """Ansible doc markup (O(), V(), C(), E(), RV()) as Markdown code; pipes escaped for a table cell."""
    text = re.sub(r"\b(?:O|V|C|E|RV)\(([^()]*(?:\([^()]*\)[^()]*)*)\)", r"`\1`", text)
    return text.replace("|", "\\|")


def default_text(value):
    if value == "":
        return '`""`'
    if isinstance(value, (list, dict)):
        return f"`{json.dumps(value, separators=(', ', ': '))}`" if value else f"`{json.dumps(value)}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def table(role):
    """The README's variables table, rendered from meta/argument_specs.yml."""
    rows = ["| Variable | Type | Default | Description |", "|---|---|---|---|"]
    for name, option in spec(role)["options"].items():
        kind = option["type"] + (f" of {option['elements']}" if option.get("elements") else "")
        lines = option["description"] if isinstance(option["description"], list) else [option["description"]]
        text = " ".join(markup(line) for line in lines)
        if option.get("choices"):
            text += " Choices: " + ", ".join(f"`{choice}`" for choice in option["choices"]) + "."
        default = "required" if option.get("required") else default_text(option.get("default"))
        rows.append(f"| `{name}` | {kind} | {default} | {text} |")
    return "\n".join(rows)


def section(role):
    """The table as the README has it now."""
    text = (role / "README.md").read_text()
    return text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip("\n")


def write(role):
    path = role / "README.md"
    text = path.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    path.write_text(text[:start] + "\n" + table(role) + "\n" + text[end:])
