"""Every shipped config validates, so none can rot (recursively, configs/**/*.yaml)."""

import pytest

from lstmctl import config
from tests.conftest import CONFIGS

ALL = sorted(CONFIGS.rglob("*.yaml"))


def test_there_are_configs():
    assert (CONFIGS / "sin2cos.yaml") in ALL


@pytest.mark.parametrize("path", ALL, ids=[str(p.relative_to(CONFIGS)) for p in ALL])
def test_config_validates_and_documents_itself(path):
    cfg = config.load(path)
    assert cfg.name
    first = path.read_text(encoding="utf-8").lstrip().splitlines()[0]
    assert first.startswith("#"), f"{path.name} must open with a comment saying what it shows and how to run it"
    assert config.loads(config.dump(cfg)) == cfg
