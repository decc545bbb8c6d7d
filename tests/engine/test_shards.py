"""ShardedDict: dict operations over its parts, and parts the collector never drops from view."""

from __future__ import annotations

import gc
from collections import OrderedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.shards import SHARDS, ShardedDict

keys = st.one_of(st.text(max_size=6), st.integers(-5, 5), st.tuples(st.text(max_size=3), st.integers(0, 3)))
operations = st.lists(
    st.tuples(
        st.sampled_from(["set", "del", "pop", "pop_default", "setdefault", "get"]), keys, st.integers()
    ),
    max_size=60,
)


@settings(max_examples=300)
@given(operations)
def test_it_answers_every_operation_as_a_dict_does(steps: list[tuple[str, object, int]]) -> None:
    sharded: ShardedDict[object, int] = ShardedDict()
    model: dict[object, int] = {}
    for operation, key, value in steps:
        if operation == "set":
            sharded[key] = value
            model[key] = value
        elif operation in ("del", "pop"):
            if key in model:
                expected = model.pop(key)
                if operation == "pop":
                    assert sharded.pop(key) == expected
                else:
                    del sharded[key]
            else:
                with pytest.raises(KeyError):
                    sharded.pop(key) if operation == "pop" else sharded.__delitem__(key)
        elif operation == "pop_default":
            assert sharded.pop(key, -1) == model.pop(key, -1)
        elif operation == "setdefault":
            assert sharded.setdefault(key, value) == model.setdefault(key, value)
        else:
            assert sharded.get(key) == model.get(key)
            assert sharded.get(key, -1) == model.get(key, -1)
        assert (key in sharded) == (key in model)
        assert len(sharded) == len(model)
    assert sorted(map(repr, sharded)) == sorted(map(repr, model))
    assert sorted(map(repr, sharded.items())) == sorted(map(repr, model.items()))
    assert sorted(sharded.values()) == sorted(model.values())
    if model:
        some = next(iter(model))
        assert sharded[some] == model[some]


def test_a_key_lives_in_the_part_its_hash_names() -> None:
    sharded: ShardedDict[str, int] = ShardedDict(OrderedDict)
    sharded["pay_1"] = 1

    part = sharded.shard("pay_1")
    assert isinstance(part, OrderedDict)
    assert part == {"pay_1": 1}
    assert sum(1 for key in range(SHARDS) if sharded.shard(str(key)) is part) < SHARDS


def test_frozen_parts_stay_tracked_and_out_of_every_collection() -> None:
    sharded: ShardedDict[str, tuple[str, int]] = ShardedDict()
    assert len(sharded.parts()) == SHARDS
    assert all(gc.is_tracked(part) for part in sharded.parts())
    # A full collection before the freeze (the collector's own, while an app is built) drops
    # every plain dict holding nothing tracked, an empty one too: the parts must stay.
    gc.collect()
    assert all(gc.is_tracked(part) for part in sharded.parts())
    gc.freeze()  # as the API does at startup
    try:
        for key in range(1000):
            sharded[f"pay_{key}"] = (f"ref_{key}", key)
        gc.collect()

        # A plain dict holding only untracked values is dropped from view at a full collection,
        # and comes back into the youngest generation with its next tuple.
        assert all(gc.is_tracked(part) for part in sharded.parts())
        parts = {id(part) for part in sharded.parts()}
        assert not parts & {id(tracked) for tracked in gc.get_objects()}
    finally:
        gc.unfreeze()
