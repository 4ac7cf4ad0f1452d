import pytest
from pydantic import BaseModel

from lstmctl.errors import ConfigError
from lstmctl.registry import DATASETS, MODELS, Registry


def test_builtin_components_are_registered():
    assert "sine_cosine" in DATASETS.names()
    assert "lstm" in MODELS.names()


def test_unknown_name_lists_what_exists():
    reg = Registry("widget", lambda: None)

    class P(BaseModel):
        pass

    reg.register("alpha", P)(lambda p: p)
    reg.register("beta", P)(lambda p: p)
    with pytest.raises(ConfigError) as e:
        reg.get("alpah")
    msg = str(e.value)
    assert "unknown widget 'alpah'" in msg and "did you mean 'alpha'" in msg and "alpha, beta" in msg


def test_double_registration_is_refused():
    reg = Registry("widget", lambda: None)

    class P(BaseModel):
        pass

    reg.register("a", P)(lambda p: p)
    with pytest.raises(ValueError):
        reg.register("a", P)(lambda p: p)
