import subprocess
import sys

from arvideo import __version__
from arvideo.cli import main


def test_version_flag(capsys):
    try:
        main(["--version"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert __version__ in capsys.readouterr().out


def test_unknown_command_exits_nonzero():
    proc = subprocess.run(
        [sys.executable, "-m", "arvideo", "no-such-command"], capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert "invalid choice" in proc.stderr
