"""ctest entry point of the pytest suite: skips (exit 77) where pytest or
numpy are missing, as the C++ oracle tests skip without the venv."""

import pathlib
import sys

try:
    import numpy  # noqa: F401
    import pytest
except ImportError as missing:
    print(f"skipped: {missing}")
    sys.exit(77)

sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", str(pathlib.Path(__file__).parent)]
                     + sys.argv[1:]))
