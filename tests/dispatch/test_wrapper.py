"""RecipeWrapper routing: unnamed and named outputs, default channel,
silent drops, transport-delay and checkpoint (no database needed)."""

from dispatch.state.wrapper import RecipeWrapper

RECIPE = {
    "1": {"queue": "a", "output": [2, 3]},
    "2": {"queue": "b", "transport-delay": 7},
    "3": {"queue": "c"},
    "4": {"queue": "d", "output": {"good": 2, "bad": [3, 5]}},
    "5": {"queue": "e"},
    "6": {"queue": "f"},
}


def wrapper(pointer, path=(9,)):
    sent = []

    def send_to_node(node, payload, path, delay):
        sent.append((node, payload, list(path), delay))
        return (node, payload)

    rw = RecipeWrapper(RECIPE, pointer, list(path), {"ID": "run"}, "in", send_to_node)
    return rw, sent


def test_attributes():
    rw, _ = wrapper(4)
    assert rw.recipe_step is RECIPE["4"]
    assert rw.recipe_pointer == 4
    assert rw.recipe_path == [9]
    assert rw.environment == {"ID": "run"}
    assert rw.payload == "in"


def test_unnamed_output_send_fans_out_with_path_and_transport_delay():
    rw, sent = wrapper(1)
    assert rw.send("x") == [(2, "x"), (3, "x")]
    assert sent == [(2, "x", [9, 1], 7), (3, "x", [9, 1], 0)]
    sent.clear()
    rw.send("y", delay=1)  # an explicit delay wins over transport-delay
    assert [entry[3] for entry in sent] == [1, 1]


def test_unnamed_output_send_to_is_dropped_unless_default_channel():
    rw, sent = wrapper(1)
    assert rw.send_to("any", "x") == []
    rw.set_default_channel("any")
    rw.send_to("any", "x")
    assert [entry[0] for entry in sent] == [2, 3]
    assert rw.send_to("other", "x") == []


def test_named_output_routing():
    rw, sent = wrapper(4)
    assert rw.send("x") == []  # no default channel: dropped
    rw.send_to("bad", "x")
    assert [entry[0] for entry in sent] == [3, 5]
    assert rw.send_to("missing", "x") == []
    sent.clear()
    rw.set_default_channel("good")
    rw.send("z")
    assert sent == [(2, "z", [9, 4], 7)]


def test_no_output_drops_everything():
    rw, sent = wrapper(6)
    assert rw.send("x") == [] and rw.send_to("a", "x") == []
    assert sent == []


def test_checkpoint_resends_to_the_same_step_with_the_same_path():
    rw, sent = wrapper(2)
    rw.checkpoint("again", delay=3)
    assert sent == [(2, "again", [9], 3)]
    sent.clear()
    rw.checkpoint("now")  # transport-delay of the step is ignored
    assert sent == [(2, "now", [9], 0)]
