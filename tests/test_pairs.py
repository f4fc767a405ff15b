"""The fixed test pairs: every bin scores every test image once, in an order spread over the photos."""
import numpy as np
import pandas as pd

from inpaint import bins
from inpaint.data.test_pairs import stratified_order, write_test_pairs


class _Masks:
    def indices_in_bin(self, b):
        return np.arange(b * 10, b * 10 + 3)  # three masks per bin


def test_the_first_pairs_of_a_bin_come_from_different_photos(tmp_path):
    sources = pd.Series([f"photo{i // 4}.jpg" for i in range(20)])  # 5 photos x 4 crops, in photo order
    write_test_pairs(_Masks(), sources, seed=1, path=tmp_path / "pairs.csv")
    pairs = pd.read_csv(tmp_path / "pairs.csv")
    for b in range(len(bins.BINS)):
        rows = pairs[pairs.bin == b]
        assert sorted(rows.image) == list(range(20))  # every test image once
        assert sources[rows.image[:5]].nunique() == 5  # the first five: five photos
        assert set(rows["mask"]) == set(range(b * 10, b * 10 + 3))  # the bin's own masks, all used
    again = tmp_path / "again.csv"
    write_test_pairs(_Masks(), sources, seed=1, path=again)
    assert again.read_text() == (tmp_path / "pairs.csv").read_text()  # seeded
    write_test_pairs(_Masks(), sources, seed=2, path=again)
    assert again.read_text() != (tmp_path / "pairs.csv").read_text()


def test_stratified_order_with_photos_of_different_sizes():
    sources = pd.Series(["a"] * 5 + ["b"] * 1 + ["c"] * 2)
    order = stratified_order(sources, np.random.default_rng(0))
    assert sorted(order) == list(range(8))
    assert set(sources[order[:3]]) == {"a", "b", "c"}
    assert set(sources[order[3:5]]) == {"a", "c"}
