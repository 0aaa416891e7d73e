"""Old home of :mod:`dispatch.runtime.consumer`: this name is that module, so that
code importing ``dispatch.consumer`` keeps working and objects pickled under
this path (databases written before the move) still load."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("dispatch.runtime.consumer")
