"""The documentation's code runs, and prints what the documentation says it prints.

Every fenced ``python`` block in README.md and docs/**/*.md is executed; a page's blocks
run top to bottom in one namespace, in a fresh interpreter per page (with warnings
turned into errors). A block immediately followed by a ``text`` block whose first line
is ``# output`` must print exactly the rest of that text block. Blocks fenced as
``python no-run`` are shown, not run.

This file is also the child process: ``python tests/test_docs.py RESULT_FILE`` reads
the blocks as JSON on stdin, runs them, and writes what each printed to RESULT_FILE.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import re
import subprocess
import sys
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
OUTPUT_MARKER = "# output"
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)\s*(?P<info>[^`]*)$")
PAGE_TIMEOUT = 50.0


@dataclass(frozen=True, slots=True)
class Block:
    """One runnable block: where it starts, its code, and the output it promises."""

    line: int
    code: str
    expected: str | None


@dataclass(frozen=True, slots=True)
class _Fence:
    info: str
    line: int
    body: str


def _fences(text: str) -> list[_Fence]:
    """Every fenced block of a Markdown text, with the blank lines that follow each."""
    lines = text.splitlines()
    fences: list[_Fence] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, marker = len(opening["indent"]), opening["fence"]
        body: list[str] = []
        index += 1
        while index < len(lines) and lines[index].strip() != marker:
            body.append(lines[index][indent:] if lines[index][:indent].isspace() else lines[index])
            index += 1
        fences.append(_Fence(opening["info"].strip(), index - len(body) + 1, "\n".join(body)))
        index += 1
        # Remember whether only blank lines separate this fence from the next line.
        while index < len(lines) and not lines[index].strip():
            index += 1
        if index < len(lines) and not FENCE.match(lines[index]):
            fences.append(_Fence("<prose>", index + 1, ""))
    return fences


def extract_blocks(text: str) -> list[Block]:
    """The runnable ``python`` blocks of a Markdown text, with their promised output."""
    fences = _fences(text)
    blocks = []
    for position, fence in enumerate(fences):
        words = fence.info.split()
        if not words or words[0] != "python" or "no-run" in words[1:]:
            continue
        expected = None
        following = fences[position + 1] if position + 1 < len(fences) else None
        if following is not None and following.info.split()[:1] == ["text"]:
            first, _, rest = following.body.partition("\n")
            if first.strip() == OUTPUT_MARKER:
                expected = rest
        blocks.append(Block(fence.line, fence.body, expected))
    return blocks


def normalise(output: str) -> str:
    """Output as compared: trailing spaces and trailing blank lines do not count."""
    return "\n".join(line.rstrip() for line in output.rstrip().splitlines())


def run_blocks(blocks: list[Block], cwd: Path) -> list[dict[str, Any]]:
    """Run ``blocks`` in a fresh interpreter; return each one's stdout and error."""
    result_file = cwd / "docs-results.json"
    payload = json.dumps([{"line": b.line, "code": b.code} for b in blocks])
    completed = subprocess.run(
        [sys.executable, "-P", str(Path(__file__)), str(result_file)],
        input=payload,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=PAGE_TIMEOUT,
        check=False,
    )
    if not result_file.exists():
        raise AssertionError(f"the docs runner crashed:\n{completed.stdout}{completed.stderr}")
    results: list[dict[str, Any]] = json.loads(result_file.read_text())
    return results


def check_page(name: str, text: str, cwd: Path) -> list[str]:
    """Run a page's blocks; return one message per block that failed or printed wrong."""
    blocks = extract_blocks(text)
    problems = []
    for block, result in zip(blocks, run_blocks(blocks, cwd), strict=False):
        where = f"{name}:{block.line}"
        if result["error"] is not None:
            problems.append(f"{where} raised:\n{result['error']}")
            break
        if block.expected is not None and normalise(result["stdout"]) != normalise(block.expected):
            problems.append(
                f"{where} printed:\n{result['stdout']}\n--- but the page says:\n{block.expected}"
            )
    return problems


def _child_main(result_file: str) -> None:
    """Run the blocks given on stdin in one namespace, as a script would."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    results = []
    warnings.simplefilter("error")
    for block in json.loads(sys.stdin.read()):
        stdout = io.StringIO()
        error = None
        try:
            code = compile(block["code"], f"<block at line {block['line']}>", "exec")
            with contextlib.redirect_stdout(stdout):
                exec(code, namespace)
        except BaseException:
            error = traceback.format_exc()
        results.append({"line": block["line"], "stdout": stdout.getvalue(), "error": error})
        if error is not None:
            break
    Path(result_file).write_text(json.dumps(results), encoding="utf-8")


def documented_pages() -> list[Path]:
    """README.md and every page under docs/ that has a runnable block."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [page for page in pages if extract_blocks(page.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("page", documented_pages(), ids=lambda page: str(page.relative_to(ROOT)))
def test_page_code_runs_and_prints_what_the_page_shows(page: Path, tmp_path: Path) -> None:
    name = str(page.relative_to(ROOT))
    problems = check_page(name, page.read_text(encoding="utf-8"), tmp_path)
    assert not problems, "\n\n".join(problems)


def reference_directives() -> list[str]:
    """The objects the reference pages render (``::: dotted.name`` lines)."""
    pages = sorted((ROOT / "docs" / "reference").glob("*.md"))
    return [
        line.removeprefix(":::").strip()
        for page in pages
        for line in page.read_text(encoding="utf-8").splitlines()
        if line.startswith(":::")
    ]


def test_reference_documents_every_public_name() -> None:
    import corral
    import corral.errors
    import corral.testing

    documented = set(reference_directives())
    expected = {
        f"corral.{name}"
        for name in corral.__all__
        # corral.errors is documented as a whole, re-exported errors with it
        if name != "__version__" and getattr(corral.errors, name, None) is None
    }
    expected |= {f"corral.testing.{name}" for name in corral.testing.__all__}
    expected.add("corral.errors")
    assert sorted(expected - documented) == []


def test_reference_directives_name_real_objects() -> None:
    import importlib

    missing = []
    for target in reference_directives():
        module_name, _, attribute = target.rpartition(".")
        try:
            found = hasattr(importlib.import_module(module_name), attribute)
        except ImportError:
            found = False
        if not found and not _is_module(target):
            missing.append(target)
    assert missing == []


def _is_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
PRINTS_MARKER = "It prints::"


def promised_output(program: Path) -> str:
    """The output an example's docstring promises: the indented block after the marker."""
    docstring = ast.get_docstring(ast.parse(program.read_text(encoding="utf-8"))) or ""
    assert PRINTS_MARKER in docstring, f"{program.name}'s docstring has no '{PRINTS_MARKER}'"
    block = docstring.split(PRINTS_MARKER, 1)[1]
    lines = []
    for line in block.strip("\n").splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line.removeprefix("    "))
    return "\n".join(lines)


@pytest.mark.parametrize("program", EXAMPLES, ids=lambda program: program.name)
def test_example_program_prints_what_its_docstring_says(program: Path, tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-W", "error", str(program)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=PAGE_TIMEOUT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert normalise(completed.stdout) == normalise(promised_output(program))


def test_readme_has_runnable_examples() -> None:
    blocks = extract_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 3
    assert all(block.expected is not None for block in blocks)


PAGE = """\
Intro.

```python
print("one")
```

```text
# output
one
```

```python no-run
raise SystemExit("never run")
```

    ```python
    total = 1 + 2
    ```

Prose in between.

```text
# output
not attached
```

```python
print(total)
print("  ")
```
```text
# output
3
```
"""


def test_extraction_pairs_outputs_and_skips_no_run_blocks() -> None:
    blocks = extract_blocks(PAGE)
    assert [block.code for block in blocks] == [
        'print("one")',
        "total = 1 + 2",
        'print(total)\nprint("  ")',
    ]
    assert [block.expected for block in blocks] == ["one", None, "3"]
    assert [block.line for block in blocks] == [4, 17, 28]


def test_a_page_that_prints_what_it_says_passes(tmp_path: Path) -> None:
    assert check_page("page.md", PAGE, tmp_path) == []


def test_wrong_output_is_reported_with_its_line(tmp_path: Path) -> None:
    wrong = PAGE.replace("# output\n3", "# output\n4")
    (problem,) = check_page("page.md", wrong, tmp_path)
    assert problem.startswith("page.md:28 printed:\n3\n")
    assert problem.endswith("--- but the page says:\n4")


def test_an_error_stops_the_page_and_names_the_block(tmp_path: Path) -> None:
    page = "```python\nx = 1\n```\n\n```python\nprint(1 / 0)\n```\n\n```python\nprint(x)\n```\n"
    (problem,) = check_page("page.md", page, tmp_path)
    assert problem.startswith("page.md:6 raised:")
    assert "ZeroDivisionError" in problem


def test_warnings_in_examples_are_errors(tmp_path: Path) -> None:
    page = '```python\nimport warnings\nwarnings.warn("careful", UserWarning)\n```\n'
    (problem,) = check_page("page.md", page, tmp_path)
    assert "UserWarning: careful" in problem


def test_blocks_run_in_a_fresh_interpreter_per_page(tmp_path: Path) -> None:
    first = "```python\nimport sys\nsys.docs_marker = 1\n```\n"
    second = (
        "```python\nimport sys\nprint(hasattr(sys, 'docs_marker'))\n```\n"
        "```text\n# output\nFalse\n```\n"
    )
    assert check_page("first.md", first, tmp_path) == []
    assert check_page("second.md", second, tmp_path) == []


if __name__ == "__main__":
    _child_main(sys.argv[1])
