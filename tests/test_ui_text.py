"""Text the app shows: no emoji (they need an emoji font and render as empty boxes where the browser has none)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\u23E9-\u23FA\u231A\u231B\uFE0F]")
"""Pictographs, dingbats, misc. symbols (✔ ⚠ ✅ …), arrows-and-stars emoji (⭐), ⏳ ⌛ and the emoji variation
selector: characters that text fonts usually lack."""


NEVER_SHOWN = {"_PRE_TOKENIZER_CHECK"}
"""Module constants that are data, not text: llama.cpp's pre-tokenizer check text (playground/runs/export_model.py),
which is tokenized and hashed to name a GGUF's pre-tokenizer, and holds emoji because llama.cpp's does."""


def strings(path: Path) -> list[tuple[int, str]]:
    """Every string literal in a Python file (f-string parts and docstrings included), with its line; not those
    assigned to a :data:`NEVER_SHOWN` constant."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    data = {id(node) for assign in ast.walk(tree) if isinstance(assign, ast.Assign)
            and any(isinstance(target, ast.Name) and target.id in NEVER_SHOWN for target in assign.targets)
            for node in ast.walk(assign.value)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in data]


def test_no_emoji_in_any_string_the_app_can_show():
    files = sorted((ROOT / "playground").rglob("*.py")) + [ROOT / "app.py"]
    found = [f"{path.relative_to(ROOT)}:{line}: {EMOJI.findall(text)}" for path in files
             for line, text in strings(path) if EMOJI.search(text)]
    assert not found, "emoji in UI text:\n" + "\n".join(found)


def test_the_check_sees_emoji_in_f_strings(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('note = f"\u26a0\ufe0f {error}"\nlabel = "\U0001F448 Left"\nplain = "Left \u00b7 Right \u2192"\n',
                      encoding="utf-8")
    assert sorted(line for line, text in strings(sample) if EMOJI.search(text)) == [1, 2]


def test_only_the_named_data_constants_are_left_out(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('_PRE_TOKENIZER_CHECK = ("\U0001F680 " "x")\nlabel = "\U0001F680 Go"\n', encoding="utf-8")
    assert [line for line, text in strings(sample) if EMOJI.search(text)] == [2]
