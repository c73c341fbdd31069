"""`cellctl chart import FILE` (issue 14, point 5): validate, print what it built, export back."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cellctl.cli import app
from statecharts import catalog
from statecharts.engine.export import to_mermaid, to_scxml

runner = CliRunner()


@pytest.fixture
def cell_scxml(tmp_path: Path) -> Path:
    path = tmp_path / "cell.scxml"
    path.write_text(to_scxml(catalog.load("cell")), encoding="utf-8")
    return path


def test_import_prints_the_tree_the_unbound_names_and_the_check(cell_scxml: Path) -> None:
    result = runner.invoke(app, ["chart", "import", str(cell_scxml)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    chart = catalog.load("cell")
    n, t = len(chart.states), len(chart.transitions)
    assert lines[0] == f"chart cell: {n} states ({n} state), {t} transitions"
    assert "    live (state; initial stopped; do watch_interlocks)" in lines
    assert "        producing (state; initial execute; exit release_hold; do execute_cycles)" in lines
    assert "          cycle.done -> (targetless) / check_repeats" in lines
    assert lines[-2].startswith("unbound, placeholders (checks and exports, does not run): action note_reason,")
    assert lines[-1] == "check: ok"


def test_bound_to_its_chart_it_exports_back_the_same_scxml_and_mermaid(cell_scxml: Path, tmp_path: Path) -> None:
    chart = catalog.load("cell")
    result = runner.invoke(app, ["chart", "import", str(cell_scxml), "--bind", "cell", "-f", "scxml"])
    assert result.exit_code == 0 and result.output == to_scxml(chart)
    out = tmp_path / "cell.mmd"
    result = runner.invoke(app, ["chart", "import", str(cell_scxml), "--bind", "cell", "-f", "mermaid", "-o", str(out)])
    assert result.exit_code == 0 and out.read_text(encoding="utf-8") == to_mermaid(chart)


def test_names_the_binding_lacks_fail_with_the_line(cell_scxml: Path) -> None:
    result = runner.invoke(app, ["chart", "import", str(cell_scxml), "--bind", "stow"])
    assert result.exit_code == 1
    assert f"error: {cell_scxml}: line " in result.output and "action 'note_reason' is not bound" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("content", "words"), [
    (b"<scxml xmlns='http://www.w3.org/2005/07/scxml'><state id='a'><onentry><script/></onentry></state></scxml>",
     "line 1: <script>: <script> is outside the structural subset"),
    (b"<scxml", "line 1: not well-formed XML"),
    (b"\xff\xfe<scxml/>", "not UTF-8 text"),
    (b"", "line 1: not well-formed XML: no element found"),
])
def test_a_bad_file_is_one_line_and_exit_1(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "bad.scxml"
    path.write_bytes(content)
    result = runner.invoke(app, ["chart", "import", str(path)])
    assert result.exit_code == 1 and words in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_a_missing_file_and_an_unknown_binding_are_clear(tmp_path: Path, cell_scxml: Path) -> None:
    result = runner.invoke(app, ["chart", "import", str(tmp_path / "none.scxml")])
    assert result.exit_code == 1 and "cannot read: No such file or directory" in result.output
    result = runner.invoke(app, ["chart", "import", str(cell_scxml), "--bind", "nope"])
    assert result.exit_code == 2 and "no chart named 'nope'" in result.output
