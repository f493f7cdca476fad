"""The demo's table cells show product titles as a person would read them."""

from __future__ import annotations

from rich.console import Console

from bridge.devtools.demo import _cell


def _rendered(cell: str) -> str:
    console = Console(record=True, width=200)
    console.print(cell)
    return console.export_text()


def test_a_title_with_html_entities_and_markup_like_brackets_renders_verbatim() -> None:
    hit = {"_id": "7", "_score": 0.5, "_source": {"title": "Fold &#39;N Go [bold] cart [/]"}}
    assert _rendered(_cell(hit, {})).splitlines()[0] == "Fold 'N Go [bold] cart [/]"
