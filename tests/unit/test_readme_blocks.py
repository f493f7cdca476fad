"""The README block rule has no loophole: unknown info strings and directives are refused."""

from __future__ import annotations

import pytest

from tests.support.readme_blocks import ReadmeRuleError, parse_blocks


def test_a_block_without_an_info_string_is_refused() -> None:
    with pytest.raises(ReadmeRuleError, match="line 2"):
        parse_blocks("text\n```\nmake test\n```\n")


def test_a_text_block_is_refused() -> None:
    with pytest.raises(ReadmeRuleError, match="'text'"):
        parse_blocks("```text\nsome output\n```\n")


def test_there_is_no_skip_directive() -> None:
    with pytest.raises(ReadmeRuleError, match="no skip"):
        parse_blocks("<!-- readme-test: skip -->\n```bash\nfalse\n```\n")


def test_directives_set_the_block_options() -> None:
    readme = '## Demo\n<!-- readme-test: needs=shared timeout=30 env:A="x y" -->\n'
    (block,) = parse_blocks(readme + "```bash\nmake demo\n```\n")
    assert (block.kind, block.heading, block.needs_shared, block.timeout_s, block.env) == (
        "bash",
        "Demo",
        True,
        30.0,
        {"A": "x y"},
    )
