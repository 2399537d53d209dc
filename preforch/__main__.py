import sys

from preforch.cli import main

sys.exit(main())
