"""Naming the member of a value that cannot be pickled, and its type with the right article."""

from __future__ import annotations

import socket
import threading

import numpy as np

from ember.runtime.objects import unpicklable
from ember.runtime.objects.type_names import a_type, with_article


class Slotted:
    __slots__ = ("conn", "n")


class Node:
    def __init__(self, child=None):
        self.child = child
        self.lock = threading.Lock() if child is None else None


def test_articles_follow_the_first_letter():
    assert [a_type(v) for v in (1, "s", {}, [], 1.5, None, object())] == [
        "an int", "a str", "a dict", "a list", "a float", "a NoneType", "an object",
    ]
    assert a_type(threading.Lock()) == "a _thread.lock"
    assert with_article("ObjectRef") == "an ObjectRef"
    assert with_article("_internal") == "an _internal"


def test_the_path_leads_through_dicts_lists_attributes_and_slots():
    slotted = Slotted()
    slotted.conn = socket.socket()
    slotted.n = 1
    try:
        value = {"a": [1, 2, {"b": Node(Node(Node()))}], "s": slotted}
        culprit = unpicklable.find(value, "value")
        assert culprit is not None and culprit.path == "value['a'][2]['b'].child.child.lock"
        assert unpicklable.explain({"s": slotted}, TypeError(), "cfg").startswith(
            "cfg['s'].conn, in a dict, is a socket.socket, which cannot be pickled ("
        )
    finally:
        slotted.conn.close()


def test_a_function_names_the_variable_it_uses():
    lock = threading.RLock()

    def uses_lock():
        return lock

    text = unpicklable.explain(uses_lock, TypeError(), "uses_lock")
    assert text.startswith("uses_lock (the variable 'lock' it uses), in a function, is a _thread.RLock")


def test_cycles_large_arrays_and_picklable_values():
    cycle: list = []
    cycle.append(cycle)
    cycle.append(threading.Lock())
    culprit = unpicklable.find(cycle, "value")
    assert culprit is not None and culprit.path == "value[1]"
    big = {"array": np.zeros(1_000_000), "ok": [1, 2]}
    assert unpicklable.find(big, "value") is None
    assert unpicklable.reason(big) is None
    assert unpicklable.reason(threading.Lock()) == (
        "value is a _thread.lock, which cannot be pickled (cannot pickle '_thread.lock' object)"
    )
