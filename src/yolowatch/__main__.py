import sys

from yolowatch.cli import main

sys.exit(main())
