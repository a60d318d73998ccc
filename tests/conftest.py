"""Shared pytest fixtures: paths to ../shared/fixtures and quiet TensorFlow logs."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir():
  """Returns the path of `../shared/fixtures`, skipping when it is absent."""
  if not FIXTURES.is_dir():
    pytest.skip("../shared/fixtures is not beside the checkout")
  return FIXTURES


