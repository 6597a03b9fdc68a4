"""Fixtures of the infrastructure tests: a detector checkpoint in the real format."""

from __future__ import annotations

import pytest
import torch

from dfpipe import checkpoints
from dfpipe.config import FrontendConfig
from dfpipe.models import build_model, config_to_dict


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Mel-CNN ``epoch-001.pt`` (seeded random weights: these tests check scoring, not accuracy)."""
    torch.manual_seed(0)
    uri = str(tmp_path_factory.mktemp("checkpoint") / "epoch-001.pt")
    payload = checkpoints.model_payload(build_model("mel-cnn").eval(), run_id="infra", epoch=1,
                                        frontend_config=config_to_dict(FrontendConfig()))
    checkpoints.save(payload, uri)
    return uri
