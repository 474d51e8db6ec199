"""Sources: subsets and splits that partition their source, and refuse what would be empty."""

import numpy as np
import pytest

from dphpe_core.sources import SubsetSource, derived_head_box, split_source


class Rows:
    """A stand-in source: row i is i."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def sample(self, i):
        return i


def test_split_source_partitions_the_rows_in_proportion_and_is_seeded():
    parts = split_source(Rows(100), {"a": 0.5, "b": 0.3, "c": 0.2}, seed=3)
    rows = [parts[k].sample(i) for k in parts for i in range(len(parts[k]))]
    assert sorted(rows) == list(range(100)) and [len(parts[k]) for k in "abc"] == [50, 30, 20]
    again = split_source(Rows(100), {"a": 0.5, "b": 0.3, "c": 0.2}, seed=3)
    assert list(again["b"].indices) == list(parts["b"].indices)
    assert list(split_source(Rows(100), {"a": 0.5, "b": 0.5}, seed=4)["a"].indices) != list(parts["a"].indices)


def test_an_empty_subset_is_refused_by_name():
    with pytest.raises(ValueError, match="subset 'val' of .* is empty"):
        SubsetSource(Rows(5), [], name="val")


def test_the_derived_head_box_is_a_square_between_neck_and_head_top():
    joints = np.zeros((16, 2))
    joints[8], joints[9] = (10.0, 20.0), (12.0, 8.0)       # MPII's upper neck and head top
    box = derived_head_box(joints)                          # x0, y0, x1, y1
    side = np.hypot(2.0, 12.0)
    assert box.shape == (4,) and box[2] - box[0] == pytest.approx(side) and box[3] - box[1] == pytest.approx(side)
    assert (box[:2] + box[2:]) / 2 == pytest.approx([11.0, 14.0])
