"""The host's side of a run over SSH: its GPUs."""

from __future__ import annotations

from dvc_invoke.engines.ssh_agent import parse_gpus


def test_gpus_in_use_are_counted_from_nvidia_smi_csv():
    # nvidia-smi --query-gpu=uuid: one line per GPU; --query-compute-apps=gpu_uuid,pid,
    # used_memory: one line per process, nothing (exit 0) when none runs.
    gpus = "GPU-de99aa\nGPU-77bb01\n"
    assert parse_gpus(gpus, "") == (2, 0)
    assert parse_gpus(gpus, "GPU-de99aa, 4242, 30000\nGPU-de99aa, 4243, 100\n") == (2, 1)
