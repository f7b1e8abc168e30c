import sys

from arvideo.cli import main

sys.exit(main())
