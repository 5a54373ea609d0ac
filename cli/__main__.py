"""``python -m klspec`` is the ``klspec`` command."""

import sys

from klspec.commands import main

sys.exit(main())
