import threading

from ember.runtime.core.memory_store import MemoryStore, StoredValue
from ember.runtime.core.reference_table import ReferenceTable


def test_wait_returns_when_enough_arrive():
    store = MemoryStore()
    ids = [b"a", b"b", b"c"]
    threading.Timer(0.05, store.put, (b"b", StoredValue(b"1"))).start()
    threading.Timer(0.1, store.put, (b"c", StoredValue(b"2"))).start()
    assert store.wait(ids, 2, timeout=5)
    assert not store.wait(ids, 3, timeout=0.05)
    assert not store.wait(ids, 3, timeout=0)


def test_first_value_wins_and_callbacks_fire():
    store = MemoryStore()
    seen = []
    store.on_ready(b"x", lambda oid, v: seen.append(v.data))
    store.put(b"x", StoredValue(b"first"))
    store.put(b"x", StoredValue(b"second"))
    assert store.get(b"x").data == b"first" and seen == [b"first"]
    store.on_ready(b"x", lambda oid, v: seen.append(b"late"))
    assert seen == [b"first", b"late"]


def test_timed_out_waiters_are_forgotten():
    store = MemoryStore()
    assert not store.wait([b"never"], 1, timeout=0.05)
    assert store._waiters == {}


def test_releases_apply_later_and_free_at_zero():
    freed = []
    table = ReferenceTable(freed.append)
    table.add_local(b"x", "owner")
    table.add_local(b"x", "owner")
    table.release_local(b"x")
    assert table.count(b"x") == 2  # not applied yet
    assert table.drain() == 0 and table.count(b"x") == 1
    table.release_local(b"x")
    assert table.drain() == 1 and freed == [b"x"]
