"""relay.server.cstream.OneAllocation: the one-client index a compiled TCP connection gives the AllocationTable
behaves as the dict it replaces, a second client included (never seen over TCP, still kept correct)."""

from __future__ import annotations

import sys

from relay.server.cstream import OneAllocation

A, B, C = ("192.0.2.1", 1000), ("192.0.2.2", 2000), ("192.0.2.3", 3000)


def test_it_behaves_as_a_dict_through_the_same_operations() -> None:
    index, reference = OneAllocation(), {}
    steps = [("set", A, "a"), ("set", A, "a2"), ("set", B, "b"), ("set", C, "c"), ("pop", A), ("pop", A),
             ("del", C), ("set", A, "a3"), ("pop", B), ("pop", A), ("set", C, "c2")]  # fmt: skip
    for step in steps:
        if step[0] == "set":
            index[step[1]] = reference[step[1]] = step[2]
        elif step[0] == "pop":
            assert index.pop(step[1], None) == reference.pop(step[1], None)
        else:
            del index[step[1]], reference[step[1]]
        assert dict(index.items()) == reference
        assert (len(index), bool(index)) == (len(reference), bool(reference))
        assert [index.get(k) for k in (A, B, C)] == [reference.get(k) for k in (A, B, C)]
        assert sorted(index.values()) == sorted(reference.values())


def test_a_missing_client_raises_key_error_and_get_gives_the_default() -> None:
    index = OneAllocation()
    assert index.get(A, "none") == "none"
    try:
        index[A]
    except KeyError:
        pass
    else:
        raise AssertionError("an empty index returned a value")
    index[A] = "a"
    assert index.get(B) is None and index[A] == "a"


def test_it_is_smaller_than_the_dict_it_replaces() -> None:
    index = OneAllocation()
    index[A] = "a"
    assert sys.getsizeof(index) < sys.getsizeof({A: "a"}) / 3
