"""The compiled parts of the package: the classifier's text scan (`router/routing/_textscan.c`), the answer's
head serializer (`router/_wire.c`) and the redaction's clean-body test (`router/redaction/_prescan.c`).

Everything else is declared in pyproject.toml. The extensions are optional: where they cannot be compiled (no C
compiler, no Python headers) the build goes on without them and the router runs the pure-Python twin
(`router/routing/textscan.py`), aiohttp's own serializer and the scanner's own pass, with the same results.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("router.routing._textscan", ["router/routing/_textscan.c"], optional=True),
                   Extension("router._wire", ["router/_wire.c"], optional=True),
                   Extension("router.redaction._prescan", ["router/redaction/_prescan.c"], optional=True)])
