"""README.md's fenced code blocks and the `<!-- readme-test: ... -->` directive above each.

The rule (info strings, directives, what each block gets) is in tests/docs/test_readme.py's
docstring; this module only parses, and refuses what the rule does not allow.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

KINDS = ("bash", "python", "json", "yaml", "toml")
FLAGS = ("fresh-clone",)
DIRECTIVE = re.compile(r"^\s*<!--\s*readme-test:(?P<body>.*?)-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)(?P<info>.*)$")
DEFAULT_TIMEOUT_S = 120.0


class ReadmeRuleError(ValueError):
    """A block or directive the README rule does not allow."""


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the opening fence
    kind: str
    text: str
    heading: str
    fresh_clone: bool = False
    needs_shared: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
    env: dict[str, str] = field(default_factory=dict)

    @property
    def test_id(self) -> str:
        return f"L{self.line}-{self.kind}"


def parse_blocks(markdown: str) -> list[Block]:
    """Every fenced block in order; unknown info strings or directives raise ReadmeRuleError."""
    lines = markdown.splitlines()
    blocks: list[Block] = []
    heading = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        match = FENCE.match(line)
        if match is None:
            index += 1
            continue
        fence, info = match["fence"], match["info"].strip()
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        if end == len(lines):
            raise ReadmeRuleError(f"line {index + 1}: code block never closed")
        kind = info.split()[0] if info else ""
        if kind not in KINDS:
            raise ReadmeRuleError(
                f"line {index + 1}: code block info string {info!r} is not one of {KINDS}; "
                "see /tmp/ctx/README-CONVENTION.md (output goes in '# -> ' comments)"
            )
        body = "\n".join(text[len(match["indent"]) :] for text in lines[index + 1 : end]) + "\n"
        directive = _directive_before(lines, index)
        blocks.append(_block(index + 1, kind, body, heading, directive))
        index = end + 1
    return blocks


def _directive_before(lines: list[str], fence_index: int) -> str:
    if fence_index == 0:
        return ""
    match = DIRECTIVE.match(lines[fence_index - 1])
    return match["body"] if match else ""


def _block(line: int, kind: str, text: str, heading: str, directive: str) -> Block:
    fresh_clone = needs_shared = False
    timeout_s = DEFAULT_TIMEOUT_S
    env: dict[str, str] = {}
    for word in shlex.split(directive):
        if word == "fresh-clone":
            fresh_clone = True
        elif word == "needs=shared":
            needs_shared = True
        elif word.startswith("timeout="):
            timeout_s = float(word.removeprefix("timeout="))
        elif word.startswith("env:") and "=" in word:
            name, _, value = word.removeprefix("env:").partition("=")
            env[name] = value
        else:
            raise ReadmeRuleError(
                f"line {line}: unknown readme-test directive {word!r} (allowed: fresh-clone, "
                "needs=shared, timeout=S, env:NAME=VALUE; there is no skip)"
            )
    if fresh_clone and kind != "bash":
        raise ReadmeRuleError(f"line {line}: fresh-clone applies to bash blocks only")
    return Block(line, kind, text, heading, fresh_clone, needs_shared, timeout_s, env)
