import pickle

import pytest

from ember.runtime.objects import serialization
from ember.runtime.objects.object_ref import ObjectRef


def test_top_level_refs_become_placeholders_nested_refs_stay():
    top = ObjectRef(b"a" * 20, "owner:1")
    nested = ObjectRef(b"b" * 20, "owner:1")
    data, deps, found = serialization.serialize_args("f", (1, top, [nested]), {"k": top})
    assert deps == [top, top]
    assert found == [nested]
    args, kwargs = serialization.deserialize_args(data, ["v0", "v1"])
    assert args[0] == 1 and args[1] == "v0"
    assert isinstance(args[2][0], ObjectRef) and args[2][0] == nested
    assert kwargs == {"k": "v1"}


def test_no_arguments_cost_nothing():
    data, deps, found = serialization.serialize_args("f", (), {})
    assert data is serialization.EMPTY_ARGS and deps == [] and found == []


def test_main_module_functions_travel_by_value():
    namespace: dict = {}
    exec("def g(x):\n    return x * 3\n", namespace)
    g = namespace["g"]
    g.__module__ = "__main__"
    data, function_id = serialization.dumps_function(g, "g")
    assert pickle.loads(data)(2) == 6
    assert len(function_id) == 16
    assert serialization.dumps_function(g, "g")[1] == function_id


def test_unpicklable_function_names_itself():
    import threading

    lock = threading.Lock()
    with pytest.raises(TypeError, match="function h .*_thread.lock"):
        serialization.dumps_function(lambda: lock, "h")
