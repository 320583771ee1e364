"""The one compiled part of the package: the classifier's text scan (`router/routing/_textscan.c`).

Everything else is declared in pyproject.toml. The extension is optional: where it cannot be compiled (no C
compiler, no Python headers) the build goes on without it and the router runs its pure-Python twin
(`router/routing/textscan.py`), with the same results.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("router.routing._textscan", ["router/routing/_textscan.c"], optional=True)])
