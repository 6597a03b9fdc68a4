"""The CPU set-up of :func:`dfpipe.devices.select_device`: freed tensor buffers are reused,
not unmapped and faulted in again on the next step."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dfpipe.config import CPU_MALLOC_KEEP_ENV
from dfpipe.devices import keep_freed_buffers
from dfpipe.errors import ConfigError

# A fresh process per side: the malloc settings are the whole process's, from then on.
FAULTS = """
import resource, sys, torch
from dfpipe.devices import select_device
if sys.argv[1] == "select_device":
    select_device("cpu", amp=False, cpu_threads=1)
torch.ones(16 << 20)  # 64 MiB, twice glibc's largest default mmap threshold
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.ones(16 << 20)  # allocated, written and freed, as a step's activations are
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(side: str, **env: str) -> int:
    done = subprocess.run([sys.executable, "-c", FAULTS, side], capture_output=True, text=True, check=True,
                          env={**os.environ, **env})
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_select_device_on_the_cpu_reuses_freed_buffers():
    pages = (64 << 20) // 4096
    default, kept = _page_faults("default"), _page_faults("select_device")
    turned_off = _page_faults("select_device", **{CPU_MALLOC_KEEP_ENV: "0"})
    # after select_device the ten reuse one buffer's pages, faulted in once
    assert kept <= 2 * pages
    # glibc's defaults (and the variable at 0): each buffer a fresh mapping, faulted in again,
    # ten buffers' worth (fewer faults, in the same ratio, where the kernel uses huge pages)
    assert default >= 5 * max(kept, 1) and turned_off >= 5 * max(kept, 1), (default, kept, turned_off)


@pytest.mark.parametrize("setting", ["1GB", "-1", "4294967296"])
def test_a_bad_malloc_setting_is_a_config_error(monkeypatch, setting):
    monkeypatch.setenv(CPU_MALLOC_KEEP_ENV, setting)
    with pytest.raises(ConfigError, match=CPU_MALLOC_KEEP_ENV):
        keep_freed_buffers()
