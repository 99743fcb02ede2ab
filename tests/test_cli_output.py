"""What the command line prints about documents cannot drive the terminal or forge lines."""

from __future__ import annotations

from cli.output import terminal_safe


def test_control_characters_in_a_file_name_are_escaped() -> None:
    shown = terminal_safe("pipe-\x1b[7m-forged\nline.txt: fetch:fetch_error - é ok")
    assert "\x1b" not in shown and "\n" not in shown
    assert shown == "pipe-\\x1b[7m-forged\\nline.txt: fetch:fetch_error - é ok"
