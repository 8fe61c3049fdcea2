"""Docstring examples in examples/ (rendered by mkdocstrings) run, print what they say, and are lint-clean."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_examples import CodeExample, EvalExample, find_examples

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FOUND = list(find_examples(str(EXAMPLES)))


def test_docstring_examples_exist() -> None:
    assert len(FOUND) >= 3, "the API reference shows runnable examples"


@pytest.mark.parametrize("example", FOUND, ids=str)
def test_docstring_example(example: CodeExample, eval_example: EvalExample) -> None:
    # pytest-examples types target_version up to py310 only; ruff and black accept py312 at run time.
    eval_example.set_config(line_length=110, target_version="py312")  # type: ignore[arg-type]
    eval_example.lint(example)
    eval_example.run_print_check(example)
