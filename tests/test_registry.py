"""The Registry type; plugins that register through it are in tests/test_plugins.py."""

import re
import subprocess
import sys

import pytest
from pydantic import BaseModel

import lstmctl.config  # noqa: F401  (importing the config registers the built-in families)
from lstmctl.errors import ConfigError
from lstmctl.registry import DATASETS, MODELS, Registry


class P(BaseModel):
    pass


def test_builtin_components_are_registered():
    assert "sine_cosine" in DATASETS.names()
    assert "lstm" in MODELS.names()


def test_the_registry_alone_registers_nothing():
    """registry.py imports no dataset or model (that would be a cycle); lstmctl.config does."""
    code = (
        "import sys, lstmctl.registry as r; "
        "print(r.DATASETS.names(), r.MODELS.names(), any(m.startswith(('lstmctl.data.', 'lstmctl.models.')) for m in sys.modules)); "
        "import lstmctl.config; print(len(r.DATASETS.names()) > 5, len(r.MODELS.names()) > 5)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == ["[] [] False", "True True"]


def test_unknown_name_lists_what_exists():
    reg = Registry("widget")
    reg.register("alpha", P)(lambda p: p)
    reg.register("beta", P)(lambda p: p)
    with pytest.raises(ConfigError) as e:
        reg.get("alpah")
    msg = str(e.value)
    assert "unknown widget 'alpah'" in msg and "did you mean 'alpha'" in msg and "alpha, beta" in msg


def test_a_second_component_under_a_taken_name_is_refused():
    reg = Registry("widget")

    def build_a(p):
        pass

    def build_b(p):
        pass

    reg.register("a", P)(build_a)
    taken = f"widget 'a' is already registered by {__name__}; register yours under another name"
    with pytest.raises(ConfigError, match=re.escape(taken)):
        reg.register("a", P)(build_b)
    assert reg.get("a").builder is build_a


def test_the_same_function_registered_again_is_no_error():
    """A module imported twice (reloaded, or once under another importer) runs its decorators
    again with new function objects of the same module and name: the newer one is kept."""
    reg = Registry("widget")

    def make():
        def build(p):
            """Builds."""

        return build

    first, second = make(), make()
    reg.register("a", P)(first)
    reg.register("a", P)(second)
    assert reg.get("a").builder is second and reg.get("a").doc == "Builds."
    assert reg.names() == ["a"]
