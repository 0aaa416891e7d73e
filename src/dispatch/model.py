"""Old home of :mod:`dispatch.state.model`: this name is that module, so that
code importing ``dispatch.model`` keeps working and objects pickled under
this path (databases written before the move) still load."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("dispatch.state.model")
