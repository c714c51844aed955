"""``python -m search_r3_train ...`` (what ``accelerate launch -m`` and ``torchrun -m`` call)."""

import sys

from search_r3_train.cli import main

if __name__ == "__main__":
    sys.exit(main())
