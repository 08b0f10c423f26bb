import sys

from googlenet.cli.main import main

sys.exit(main())
