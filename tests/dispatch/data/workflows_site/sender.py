"""Another python-workflows program (not a service): starts a recipe with a
RecipeWrapper and sends a plain message, on the ``zeo`` transport named as
any workflows program names its transport.  Arguments: the recipe JSON, the run id."""

import json
import sys

import workflows.transport
from workflows.recipe import Recipe, RecipeWrapper

transport = workflows.transport.lookup("zeo")()
assert transport.connect(), "cannot connect"
recipe = Recipe(json.loads(sys.argv[1]))
recipe.validate()
run_id = sys.argv[2]
RecipeWrapper(recipe=recipe, transport=transport, environment={"ID": run_id}).start()
transport.send("plain", {"from": "sender"})
transport.disconnect()
print("sent")
