"""Build the optional C walk of transforms.body; everything else is in pyproject.toml.

The extension reads the libxml2 tree that lxml builds, so it compiles against the headers
lxml ships. Where it cannot be built (no C compiler), installation goes on without it and
transforms.body uses its pure-Python walk, which gives the same output.
"""

import lxml
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "transforms._speedups",
            sources=[
                "transforms/_speedups.c",
                "transforms/_header_reader.c",
                "transforms/_markup_scan.c",
            ],
            include_dirs=lxml.get_include(),
            optional=True,
        )
    ]
)
