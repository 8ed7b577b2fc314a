"""bridge/soap/_spyne_compat.py: spyne 2.14 imports through the maintained six on every interpreter."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).parent.parent.parent


def setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    return parser


def test_package_installs_on_python_3_11_to_3_13():
    options = setup_cfg()["options"]
    supported = SpecifierSet(options["python_requires"])
    assert all(version in supported for version in ("3.11", "3.12", "3.13"))
    requirements = [Requirement(line) for line in options["install_requires"].split("\n")
                    if line.strip() and not line.strip().startswith("#")]
    by_name = {r.name.lower(): r for r in requirements}
    assert "six" in by_name
    cgi = by_name["legacy-cgi"]              # the cgi module spyne needs, removed from 3.13
    assert cgi.marker.evaluate({"python_version": "3.13"}) and not cgi.marker.evaluate({"python_version": "3.12"})


def test_spyne_util_six_is_the_maintained_six_with_spynes_addition():
    import six

    import bridge.soap  # noqa: F401  (installs the alias)
    from spyne.util import six as spyne_six
    from spyne.util.six.moves.collections_abc import MutableSet
    from spyne.util.six.moves.urllib.parse import quote

    import collections.abc
    import urllib.parse

    assert spyne_six.text_type is six.text_type and spyne_six.moves.range is six.moves.range
    assert spyne_six.get_function_name(len) == "len"
    assert MutableSet is collections.abc.MutableSet and quote is urllib.parse.quote


def test_spyne_is_imported_only_after_the_compat_layer():
    # A fresh interpreter: importing the SOAP application must not touch spyne's vendored six.
    code = ("import sys, bridge.soap.app; "
            "m = sys.modules['spyne.util.six']; "
            "assert m.__name__ == 'spyne.util.six' and not getattr(m, '__file__', '').endswith('six.py'), m; "
            "print('ok')")
    result = subprocess.run([sys.executable, "-W", "error::DeprecationWarning:bridge", "-c", code],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
