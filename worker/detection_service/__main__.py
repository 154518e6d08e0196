"""`python -m worker.detection_service`: the same as `buzzwatch detect`."""

import sys

from buzzwatch.cli import main

sys.exit(main(["detect", *sys.argv[1:]]))
