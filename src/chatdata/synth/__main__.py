"""``python -m chatdata.synth``: regenerate the bundled sample or write a big forest (see :mod:`chatdata.synth.cli`)."""

import sys

from chatdata.synth.cli import main

if __name__ == "__main__":
    sys.exit(main())
