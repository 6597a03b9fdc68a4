"""Progress when stdout is not a terminal: one line per phase start and per tenth, on stderr."""

from __future__ import annotations

from dfpipe.progress import Progress, stdout_is_terminal


def test_progress_prints_a_line_per_tenth_when_not_a_terminal(capsys):
    assert not stdout_is_terminal()  # pytest captures stdout
    with Progress(unit="shards") as progress:
        assert not progress.live
        progress.update("features demo:flac", 0, 250)
        for _ in range(250):
            progress.advance("features demo:flac")
        progress.update("scan", 3, 3)
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    features = [line for line in lines if line.startswith("features demo:flac: ")]
    assert len(features) == 11  # the start, then each tenth
    assert features[0].startswith("features demo:flac: 0/250 shards (0 %, ")
    assert features[4].startswith("features demo:flac: 100/250 shards (40 %, ")
    assert features[-1].startswith("features demo:flac: 250/250 shards (100 %, ")
    assert [line for line in lines if line.startswith("scan: ")] == [lines[-1]]


def test_progress_rate_and_disabled(capsys):
    with Progress(unit="files", rate=True) as progress:
        progress.update("scoring", 0, 4)
        progress.update("scoring", 4, 4)
    assert capsys.readouterr().err.splitlines()[-1].endswith(" files/s)")
    with Progress(enabled=False) as progress:
        progress.update("scoring", 0, 4)
        progress.advance("scoring", 4)  # counted, not shown
    assert capsys.readouterr() == ("", "")
