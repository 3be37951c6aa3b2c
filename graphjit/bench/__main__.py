"""`python -m graphjit.bench`: the same as `graphjit bench`."""

import sys

from graphjit.bench.cli import main

sys.exit(main())
