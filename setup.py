"""The one build step pyproject.toml cannot declare: the message catalogs compiled into the wheel.

build_py copies the package, then compiles every `messages/locale/*/LC_MESSAGES/fhir3t.po` into the `.mo`
gettext loads (with the sha256 of its .po beside it), using fhir3t/messages/catalog.py loaded by path (it
needs only Babel, a build requirement). An editable install has no build_lib to write into: there the
first run that needs a language compiles its .po into a cache (see catalog.py).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
CATALOG = HERE / "src" / "fhir3t" / "messages" / "catalog.py"


class build_py_with_catalogs(build_py):  # noqa: N801 (setuptools' naming)
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        spec = importlib.util.spec_from_file_location("_fhir3t_catalog", CATALOG)
        assert spec is not None and spec.loader is not None
        catalog = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(catalog)
        src = HERE / "src" / "fhir3t" / "messages" / "locale"
        out = Path(self.build_lib) / "fhir3t" / "messages" / "locale"
        for mo in catalog.compile_tree(src, out):
            self.announce(f"compiled {mo}", level=2)


setup(cmdclass={"build_py": build_py_with_catalogs})
