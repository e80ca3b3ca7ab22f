from ember.runtime.wire import resources


def test_fractions_add_up_without_drift():
    free = resources.to_fixed({"GPU": 1})
    quarter = resources.to_fixed({"GPU": 0.1})
    for _ in range(10):
        assert resources.fits(quarter, free)
        resources.subtract(free, quarter)
    assert free["GPU"] == 0
    assert not resources.fits(quarter, free)


def test_missing_resource_does_not_fit():
    assert not resources.fits({"custom": 1}, {"CPU": 10})
    assert resources.fits({}, {})


def test_describe_names_units():
    shape = resources.to_fixed({"CPU": 2, "GPU": 0.5, "memory": 3 * 2**30})
    assert resources.describe(shape) == "{CPU: 2, GPU: 0.5, memory: 3GiB}"
    assert resources.key_of({"b": 1, "a": 2}) == (("a", 2), ("b", 1))
