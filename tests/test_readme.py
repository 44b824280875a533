"""The README's two commands are what CI and users run: keep them honest."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _command_after(lines, marker):
    """The command lines (continuations included) of the first command after ``marker``."""
    start = next(i for i, line in enumerate(lines) if marker in line)
    command = []
    for line in lines[start:]:
        if command or line.startswith("python3 -m venv"):
            command.append(line)
            if not line.endswith("\\"):
                return command
    raise AssertionError(f"no command after {marker!r}")


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text().splitlines()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _command_after(ci, "cd ") == _command_after(readme, "# The tests")


def test_readme_main_command_runs_the_report():
    readme = (ROOT / "README.md").read_text().splitlines()
    assert "fastmlp report" in " ".join(_command_after(readme, "# The main job"))
