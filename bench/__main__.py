"""`python -m bench`: runs every benchmark and writes bench/results.md and bench/results.json.

See bench/harness.py for the figures and options (`python -m bench --help`).
"""

import sys

from bench.harness import main

if __name__ == "__main__":
    sys.exit(main())
