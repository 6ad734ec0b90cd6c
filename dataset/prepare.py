"""Prepare datasets for recbole-speeder: ``python dataset/prepare.py {amazon,synthetic} ...``.

See dataset/README.md. This file only puts the checkout on ``sys.path`` and calls
:func:`recbole_speeder.data.prepare.cli.main`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from recbole_speeder.data.prepare.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
