"""Recipes: the validation cases of ZOCALO.md with their messages, load-time
sanitising, the duplicate-key comment idiom, and our command/slurm steps."""

import json
import logging

import pytest

from dispatch.state.recipe import Recipe, RecipeError


def invalid(data):
    """The message of the RecipeError that validating *data* raises."""
    with pytest.raises(RecipeError) as raised:
        Recipe(data).validate()
    message = str(raised.value)
    assert message.startswith("Invalid recipe: ")
    return message


SIMPLE = {
    "1": {"service": "A", "queue": "a", "output": 2},
    "2": {"service": "B", "queue": "b"},
    "start": [[1, {}]],
}


def test_a_simple_recipe_is_valid_and_sanitised():
    recipe = Recipe(SIMPLE)
    recipe.validate()
    assert sorted(recipe.steps) == [1, 2]
    assert recipe[1]["output"] == [2]  # scalar output becomes a list
    assert recipe.start == [(1, {})]
    assert recipe == json.dumps(SIMPLE)  # equal to its JSON text


def test_empty_recipe():
    assert invalid({}) == "Invalid recipe: No recipe defined"


def test_start_missing_empty_invalid_and_pointing_to_itself():
    assert invalid({"1": {}}) == 'Invalid recipe: "start" node missing'
    assert invalid({"1": {}, "start": []}) == 'Invalid recipe: "start" node empty'
    assert invalid({"1": {}, "start": [[1]]}) == 'Invalid recipe: "start" node invalid'
    assert invalid({"1": {}, "start": [1]}) == 'Invalid recipe: "start" node invalid'
    assert (
        invalid({"1": {}, "start": [["start", {}]]})
        == 'Invalid recipe: "start" node points to itself'
    )


def test_error_must_not_point_to_start_or_error():
    base = {"1": {}, "start": [[1, {}]]}
    assert "points to" in invalid({**base, "error": ["start"]})
    assert invalid({**base, "error": "error"}) == (
        'Invalid recipe: "error" node points to itself'
    )


def test_non_numeric_nodes_including_zero():
    assert invalid({"xnode": {}, "1": {}, "start": [[1, {}]]}).startswith(
        'Invalid recipe: Node "xnode" is not numeric'
    )
    # workflows keeps "0" as a string by accident; we say why it is refused.
    message = invalid({"0": {}, "start": [[0, {}]]})
    assert message.startswith('Invalid recipe: Node "0" is not numeric')
    assert "from 1" in message


def test_invalid_links():
    base = {"2": {}, "start": [[1, {}]]}
    assert invalid({**base, "1": {"output": "2"}}) == (
        "Invalid recipe: Invalid link in recipe (2)"
    )
    assert invalid({**base, "1": {"output": [2, "x"]}}) == (
        "Invalid recipe: Invalid link in recipe ([2, 'x'])"
    )
    assert "Invalid link" in invalid({**base, "1": {"error": {"bad": [1.5]}}})


def test_missing_node_names_the_path():
    message = invalid({"1": {"output": {"done": [2]}}, "start": [[1, {}]]})
    assert message == (
        'Invalid recipe: Node "2" is referenced via "[\'start\', 1]" but missing'
    )
    assert "but missing" in invalid({"1": {}, "start": [[7, {}]]})
    assert "but missing" in invalid({"1": {}, "start": [[1, {}]], "error": [9]})


def test_cycles_and_self_loops_are_rejected():
    cycle = {"1": {"output": 2}, "2": {"output": [1]}, "start": [[1, {}]]}
    assert invalid(cycle) == (
        "Invalid recipe: Recipe contains cycle (['start', 1, 2] -> 1)"
    )
    loop = {"1": {"error": [1]}, "start": [[1, {}]]}
    assert "Recipe contains cycle" in invalid(loop)


def test_diamonds_are_allowed():
    Recipe(
        {
            "1": {"output": {"left": 2, "right": [3]}},
            "2": {"output": 4},
            "3": {"output": 4},
            "4": {},
            "start": [[1, {}]],
        }
    ).validate()


def test_unreferenced_node():
    message = invalid({"1": {}, "2": {}, "start": [[1, {}]]})
    assert message == 'Invalid recipe: Recipe contains unreferenced node "2"'


def test_error_nodes_count_as_referenced_and_scalar_error_is_accepted():
    # workflows' constructor crashes on a scalar "error"; we take it as [2].
    recipe = Recipe({"1": {}, "2": {}, "start": [[1, {}]], "error": 2})
    recipe.validate()
    assert recipe.error == [2]


def test_duplicate_key_comment_idiom_is_tolerated_with_a_warning(caplog):
    text = """{
      "1": ["Recipe for a thing"],
      "1": {"queue": "a"},
      "start": [[1, []]]
    }"""
    with caplog.at_level(logging.WARNING, logger="dispatch.state.recipe"):
        recipe = Recipe(text)
    recipe.validate()
    assert recipe[1] == {"queue": "a"}
    assert "taken as a comment" in caplog.text
    assert "Recipe for a thing" in caplog.text


def test_description_and_comment_keys_are_allowed():
    recipe = Recipe({**SIMPLE, "description": "two steps"})
    recipe.validate()
    assert recipe.description == "two steps"
    Recipe({**SIMPLE, "comment": "also fine"}).validate()
    assert "must be a string" in invalid({**SIMPLE, "description": ["no"]})


def test_command_and_slurm_steps():
    recipe = Recipe(
        {
            "1": {"command": ["echo", "hello"], "output": 2},
            "2": {"command": ["hostname"], "slurm": {"partition": "debug"}},
            "start": [[1, {}]],
        }
    )
    recipe.validate()
    bad_command = {"1": {"command": "echo hello"}, "start": [[1, {}]]}
    assert 'Node "1" has an invalid "command"' in invalid(bad_command)
    assert "invalid" in invalid({"1": {"command": []}, "start": [[1, {}]]})
    no_command = {"1": {"slurm": {"partition": "x"}}, "start": [[1, {}]]}
    assert 'has "slurm" but no "command"' in invalid(no_command)
    bad_slurm = {"1": {"command": ["x"], "slurm": ["x"]}, "start": [[1, {}]]}
    assert 'invalid "slurm"' in invalid(bad_slurm)


def test_not_json_or_not_an_object():
    with pytest.raises(RecipeError, match="not valid JSON"):
        Recipe("{")
    with pytest.raises(RecipeError, match="JSON object"):
        Recipe("[1, 2]")


def test_to_dict_round_trips():
    recipe = Recipe({**SIMPLE, "error": [2]})
    again = Recipe(json.loads(recipe.to_json()))
    assert again == recipe
    assert recipe.to_dict()["start"] == [[1, {}]]
