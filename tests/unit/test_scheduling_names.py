"""The names bundles offer their resources under (``wire/bundle_resources``), and label
selectors (``wire/label_selector``): the formats every process reads alike."""

from __future__ import annotations

import pytest

from ember.runtime.wire import bundle_resources, label_selector, resources

GROUP = "0123456789abcdef0123456789abcdef"


def test_a_committed_bundle_offers_its_resources_by_index_and_for_the_whole_group() -> None:
    added = bundle_resources.committed(resources.to_fixed({"CPU": 2, "my_group_res": 1}), GROUP, 1)
    assert resources.to_float(added) == {
        f"CPU_group_1_{GROUP}": 2, f"CPU_group_{GROUP}": 2,
        f"my_group_res_group_1_{GROUP}": 1, f"my_group_res_group_{GROUP}": 1,
        f"bundle_group_1_{GROUP}": 1000, f"bundle_group_{GROUP}": 1000,
    }
    assert bundle_resources.parse(f"my_group_res_group_1_{GROUP}") == ("my_group_res", GROUP, 1)
    assert bundle_resources.parse(f"CPU_group_{GROUP}") == ("CPU", GROUP, -1)
    assert bundle_resources.parse("my_group_res") is None  # an ordinary name that says "group"
    assert bundle_resources.groups_of(added) == {GROUP}


def test_work_in_a_bundle_asks_for_both_names_so_the_bundle_is_never_overcommitted() -> None:
    shape = resources.to_fixed({"CPU": 1})
    in_bundle = bundle_resources.in_group(shape, GROUP, 0)
    assert set(in_bundle) == {f"CPU_group_0_{GROUP}", f"CPU_group_{GROUP}"}
    assert set(bundle_resources.in_group(shape, GROUP, -1)) == {f"CPU_group_{GROUP}"}
    # Two tasks, one in bundle 0 and one in "any bundle", never both fit a one-CPU bundle.
    offered = bundle_resources.committed(shape, GROUP, 0)
    resources.subtract(offered, bundle_resources.in_group(shape, GROUP, -1))
    assert not resources.fits(in_bundle, offered)
    # Work that asks for nothing still takes a sliver of the bundle: it runs where the group is.
    nothing = bundle_resources.in_group({}, GROUP, -1)
    assert resources.to_float(nothing) == {f"bundle_group_{GROUP}": 0.001}


def test_errors_say_bundles_in_plain_words() -> None:
    shape = bundle_resources.in_group(resources.to_fixed({"CPU": 1, "GPU": 1}), GROUP, 2)
    assert bundle_resources.describe(shape) == f"{{CPU: 1, GPU: 1}} in bundle 2 of placement group {GROUP[:12]}"
    assert bundle_resources.describe(resources.to_fixed({"CPU": 1})) == "{CPU: 1}"


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ({"zone": "a"}, {"zone": "a"}, True),
    ({"zone": "a"}, {"zone": "b"}, False),
    ({"zone": "a"}, {}, False),
    ({"zone": "!a"}, {"zone": "b"}, True),
    ({"zone": "!a"}, {}, True),  # a node without the label is not in zone a
    ({"zone": "!a"}, {"zone": "a"}, False),
    ({"zone": "in(a, b)"}, {"zone": "b"}, True),
    ({"zone": "in(a,b)"}, {"zone": "c"}, False),
    ({"zone": "!in(a,b)"}, {"zone": "c"}, True),
    ({"zone": "!in(a,b)"}, {"zone": "a"}, False),
    ({"zone": "a", "ember.dev/group": "gpu"}, {"zone": "a", "ember.dev/group": "gpu"}, True),
    ({"zone": "a", "ember.dev/group": "gpu"}, {"zone": "a", "ember.dev/group": "cpu"}, False),
])
def test_label_selectors_match_as_rays_do(selector: dict[str, str], labels: dict[str, str], expected: bool) -> None:
    assert label_selector.matches(label_selector.check(selector), labels) is expected


@pytest.mark.parametrize(("selector", "complaint"), [
    ({"zone": "in()"}, "invalid condition 'in()' for label 'zone'"),
    ({"zone": "!!a"}, "invalid condition '!!a'"),
    ({"zone": "-a"}, "invalid condition '-a'"),
    ({"-zone": "a"}, "invalid label key '-zone'"),
    ({"bad_/zone": "a"}, "invalid label key 'bad_/zone': its prefix"),
    ({"zone": 1}, "keys and conditions must be strings"),
    (["zone"], "must be a dict"),
])
def test_bad_selectors_are_refused_naming_the_key(selector: object, complaint: str) -> None:
    with pytest.raises(label_selector.LabelSelectorError) as raised:
        label_selector.check(selector)
    assert complaint in str(raised.value)
