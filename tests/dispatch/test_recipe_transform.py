"""Recipes: parameter substitution (the table of ZOCALO.md 2.6, with the
quirks fixed) and merging that leaves both operands untouched."""

import copy

import pytest

from dispatch.state.parameters import SubstitutionError, substitute_string
from dispatch.state.recipe import Recipe, RecipeError


@pytest.mark.parametrize(
    "template, parameters, expected",
    [
        ("{a}", {"a": 5}, "5"),
        ("pre {a} post", {"a": "X"}, "pre X post"),
        ("{a}", {"a": [1, 2]}, "[1, 2]"),
        ("{a[k]}", {"a": {"k": "v"}}, "v"),
        ("{a}", {}, "{a}"),
        ("{a[k]}", {}, "{a[k]}"),
        ("{$REPLACE:a}", {"a": [1, {"b": 2}]}, [1, {"b": 2}]),
        ("{$REPLACE:a[k]}", {"a": {"k": [3]}}, [3]),
        ("{$REPLACE:a}", {}, None),
        ("{a}", {"a": "{b}", "b": "B"}, "{b}"),
        ("{{literal}}", {}, "{literal}"),
        ("{a:>5}", {"a": "x"}, "    x"),
        ("{a!r}", {"a": "x"}, "'x'"),
        # zocalo raises on these; an undefined name stays as written.
        ("{a:>5}", {}, "{a:>5}"),
        ("{a.b}", {}, "{a.b}"),
        ("{a!r} and {b}", {"b": 1}, "{a!r} and 1"),
    ],
)
def test_substitution_table(template, parameters, expected):
    assert substitute_string(template, parameters) == expected


def test_replace_returns_a_copy():
    value = {"k": [1]}
    result = substitute_string("{$REPLACE:a}", {"a": value})
    result["k"].append(2)
    assert value == {"k": [1]}


@pytest.mark.parametrize(
    "template, reason",
    [
        ("{}", "positional"),
        ("{0}", "positional"),
        ("x {$REPLACE:a}", "whole string"),
        ("{a", "'{a'"),
        ("{a[missing]}", "cannot resolve"),
    ],
)
def test_bad_templates_raise_a_clear_error(template, reason):
    with pytest.raises(SubstitutionError, match=reason.replace("[", r"\[")):
        substitute_string(template, {"a": {"k": 1}})


def test_apply_parameters_reaches_keys_payloads_queues_and_is_pure():
    source = {
        "1": {
            "queue": "work.{site}",
            "parameters": {"{name}": "{value}", "list": "{$REPLACE:items}"},
            "command": ["echo", "{value}"],
        },
        "start": [[1, {"id": "{guid}"}]],
    }
    recipe = Recipe(source)
    before = copy.deepcopy(recipe.data)
    result = recipe.apply_parameters(
        {"site": "b1", "name": "n", "value": 7, "items": [1, 2], "guid": "G"}
    )
    assert recipe.data == before
    assert result[1]["queue"] == "work.b1"
    assert result[1]["parameters"] == {"n": "7", "list": [1, 2]}
    assert result[1]["command"] == ["echo", "7"]
    assert result.start == [(1, {"id": "G"})]


def test_apply_parameters_names_the_step_with_a_bad_template():
    recipe = Recipe({"1": {}, "3": {"queue": "q{}"}, "start": [[1, {}]]})
    with pytest.raises(RecipeError) as raised:
        recipe.apply_parameters({})
    assert str(raised.value).startswith(
        'Invalid recipe: cannot substitute parameters in node "3"'
    )
    assert "positional" in str(raised.value)


A = {
    "1": {"queue": "a", "output": {"done": 2}},
    "2": {"queue": "a2"},
    "start": [[1, "A"]],
    "error": [2],
}
B = {
    "1": {"queue": "b", "output": [2], "error": 3},
    "2": {"queue": "b2"},
    "3": {"queue": "b3"},
    "start": [[1, "B"]],
    "error": 3,
}


def test_merge_renumbers_translates_links_and_appends_start_and_error():
    left, right = Recipe(A), Recipe(B)
    merged = left.merge(right)
    merged.validate()
    assert sorted(merged.steps) == [1, 2, 3, 4, 5]
    assert merged[3] == {"queue": "b", "output": [4], "error": 5}
    assert merged[1]["output"] == {"done": 2}
    assert merged.start == [(1, "A"), (3, "B")]
    assert merged.error == [2, 5]


def test_merge_modifies_neither_operand():
    left, right = Recipe(A), Recipe(B)
    left_before, right_before = copy.deepcopy(left.data), copy.deepcopy(right.data)
    merged = left.merge(right)
    merged[1]["queue"] = "changed"
    assert left.data == left_before
    assert right.data == right_before
    right.validate()


def test_merge_with_nothing_and_of_nothing_are_copies():
    recipe = Recipe(A)
    assert recipe.merge(None) == recipe
    assert recipe.merge(None) is not recipe
    assert recipe.merge({}) == recipe
    assert Recipe().merge(recipe) == recipe
    assert recipe.merge(Recipe(B).to_json()) == recipe.merge(Recipe(B))


def test_merge_does_not_deduplicate():
    merged = Recipe(A).merge(A)
    assert len(merged.steps) == 4
    assert merged.start == [(1, "A"), (3, "A")]


def test_merge_validates_its_operands():
    with pytest.raises(RecipeError, match="unreferenced"):
        Recipe(A).merge({"1": {}, "2": {}, "start": [[1, {}]]})
