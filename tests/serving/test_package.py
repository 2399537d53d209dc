"""serving/__init__.py names the public API, whatever sub-package holds each name, and loads none of it on import."""

import subprocess
import sys

import pytest

import preforch.serving as serving


@pytest.mark.parametrize("name", sorted(serving.EXPORTS))
def test_every_public_name_loads_from_the_package(name):
    module, _, attr = serving.EXPORTS[name].partition(":")
    assert getattr(serving, name) is getattr(__import__(module, fromlist=[attr]), attr)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'folder'"):
        serving.folder  # noqa: B018 (the old flat module is gone)


def test_importing_the_package_or_its_configs_loads_no_policy_server_or_torch():
    code = ("import sys, preforch.serving, preforch.serving.config; "
            "print(sorted(m for m in sys.modules if m.startswith(('torch', 'preforch.serving.server', "
            "'preforch.serving.backends', 'preforch.serving.decoding')) or m.endswith('.folder')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
