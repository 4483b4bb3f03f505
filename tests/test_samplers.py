"""Samplers, Subset, ConcatDataset and random_split, as torch.utils.data's: the deterministic parts
exactly (against hand-written lists and torch), the random ones by their properties."""
import math
from collections import namedtuple

import numpy as np
import pytest

import tinygrad_cv as tg
import tinygrad_cv.data as D


class Range:
    """A dataset whose i-th sample is start + i."""

    def __init__(self, n, start=0):
        self.n, self.start = n, start

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not -self.n <= i < self.n:
            raise IndexError(i)
        return self.start + (i % self.n)


# --------------------------------------------------------------------------- deterministic: exact
def test_sequential_sampler_is_every_index_in_order():
    assert list(D.SequentialSampler(Range(5))) == [0, 1, 2, 3, 4] and len(D.SequentialSampler(Range(5))) == 5


@pytest.mark.parametrize("n, size, drop_last", [(10, 3, False), (10, 3, True), (9, 3, True), (2, 5, False)])
def test_batch_sampler_cuts_in_order(n, size, drop_last):
    batches = list(D.BatchSampler(range(n), size, drop_last))
    expected = [list(range(s, min(s + size, n))) for s in range(0, n, size)]
    if drop_last:
        expected = [b for b in expected if len(b) == size]
    assert batches == expected and len(D.BatchSampler(range(n), size, drop_last)) == len(expected)


@pytest.mark.parametrize("n, size, drop_last", [(10, 3, False), (10, 3, True), (9, 3, True), (2, 5, False)])
def test_batch_sampler_and_sequential_sampler_equal_torch(n, size, drop_last):
    pytest.importorskip("torch")
    from torch.utils.data import BatchSampler, SequentialSampler
    ours = D.BatchSampler(D.SequentialSampler(range(n)), size, drop_last)
    theirs = BatchSampler(SequentialSampler(range(n)), size, drop_last)
    assert list(ours) == list(theirs) and len(ours) == len(theirs)


@pytest.mark.parametrize("make, message", [
    (lambda: D.BatchSampler(range(3), 0, False), "BatchSampler: batch_size should be a positive integer"),
    (lambda: D.BatchSampler(range(3), True, False), "batch_size should be a positive integer value, got True"),
    (lambda: D.BatchSampler(range(3), 2, 1), "drop_last should be a boolean value"),
    (lambda: D.RandomSampler(Range(3), replacement=1), "RandomSampler: replacement should be a boolean"),
    (lambda: D.RandomSampler(Range(3), num_samples=0), "num_samples should be a positive integer"),
    (lambda: D.RandomSampler(Range(0)), "num_samples should be a positive integer value, got 0"),
    (lambda: D.WeightedRandomSampler([1, 2], 0), "WeightedRandomSampler: num_samples should be a positive"),
    (lambda: D.WeightedRandomSampler([[1, 2]], 2), "1-d sequence"),
    (lambda: D.WeightedRandomSampler([1, -1], 2), "non-negative"),
    (lambda: D.WeightedRandomSampler([0, 0], 2), "not all zero"),
    (lambda: D.WeightedRandomSampler([1, 0, 1], 3, replacement=False), "cannot draw num_samples=3 without"),
])
def test_sampler_arguments_are_checked(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_generator_must_be_a_numpy_generator():
    with pytest.raises(TypeError, match="RandomSampler: generator must be a numpy.random.Generator"):
        D.RandomSampler(Range(3), generator=3)


def test_subset_indexes_through_its_indices():
    subset = D.Subset(Range(10, start=100), [7, 2, 5])
    assert len(subset) == 3 and [subset[i] for i in range(3)] == [107, 102, 105]
    assert subset[-1] == 105
    assert D.Subset(np.arange(100, 110), [7, 2, 5])[[0, 2]].tolist() == [107, 105]     # one list, passed on


def test_concat_dataset_indexes_across_datasets_with_negative_indices():
    parts = [Range(3, start=0), Range(0, start=50), Range(4, start=10)]
    concat = D.ConcatDataset(parts)
    expected = [0, 1, 2, 10, 11, 12, 13]                    # hand-written
    assert len(concat) == 7 and concat.cumulative_sizes == [3, 3, 7]
    assert [concat[i] for i in range(7)] == expected and [concat[i] for i in range(-7, 0)] == expected
    with pytest.raises(ValueError, match="absolute value of index should not exceed dataset length"):
        concat[-8]
    with pytest.raises(IndexError, match="index 7 is out of range for 7 samples"):
        concat[7]
    with pytest.raises(ValueError, match="should not be an empty iterable"):
        D.ConcatDataset([])


def test_concat_dataset_and_subset_equal_torch():
    torch = pytest.importorskip("torch")
    parts = [list(range(3)), [], list(range(10, 14))]
    ours, theirs = D.ConcatDataset(parts), torch.utils.data.ConcatDataset(parts)
    assert ours.cumulative_sizes == theirs.cumulative_sizes
    assert [ours[i] for i in range(-7, 7)] == [theirs[i] for i in range(-7, 7)]
    subset, their_subset = D.Subset(parts[2], [3, 0]), torch.utils.data.Subset(parts[2], [3, 0])
    assert [subset[i] for i in (0, 1, -1)] == [their_subset[i] for i in (0, 1, -1)]
    array = np.arange(10, 20)
    assert D.Subset(array, [4, 1, 8])[[2, 0]].tolist() == torch.utils.data.Subset(array, [4, 1, 8])[[2, 0]].tolist()


# --------------------------------------------------------------------------- random_split
def split_lengths(n, fractions):
    """PyTorch's rule, written out: floor each share, then hand out the remainder one each from the first."""
    counts = [int(n * f) for f in fractions]
    k = 0
    while sum(counts) < n:
        counts[k % len(counts)] += 1
        k += 1
    return counts


@pytest.mark.parametrize("n, lengths", [(10, [3, 7]), (10, [0.5, 0.5]), (11, [0.3, 0.3, 0.4]), (7, [0.1, 0.9]),
                                        (5, [0.2, 0.2, 0.2, 0.2, 0.2])])
def test_random_split_lengths_are_disjoint_and_cover(n, lengths):
    splits = D.random_split(Range(n), lengths, generator=np.random.default_rng(0))
    expected = lengths if all(isinstance(x, int) for x in lengths) else split_lengths(n, lengths)
    assert [len(s) for s in splits] == expected
    values = [s[i] for s in splits for i in range(len(s))]
    assert sorted(values) == list(range(n))                 # disjoint and covering
    again = D.random_split(Range(n), lengths, generator=np.random.default_rng(0))
    assert [list(s.indices) for s in again] == [list(s.indices) for s in splits]


@pytest.mark.parametrize("n, lengths", [(10, [3, 7]), (11, [0.3, 0.3, 0.4]), (7, [0.1, 0.9]), (3, [0.5, 0.5])])
def test_random_split_lengths_equal_torch(n, lengths):
    torch = pytest.importorskip("torch")
    ours = D.random_split(Range(n), lengths, generator=np.random.default_rng(1))
    theirs = torch.utils.data.random_split(Range(n), lengths, generator=torch.Generator().manual_seed(1))
    assert [len(s) for s in ours] == [len(s) for s in theirs]


def test_random_split_checks_lengths():
    with pytest.raises(ValueError, match=r"sum of input lengths \(9\) does not equal .* dataset \(10\)"):
        D.random_split(Range(10), [4, 5])
    with pytest.raises(ValueError, match="fraction at index 0 is not between 0 and 1, got 1.5"):
        D.random_split(Range(10), [1.5, -0.5])
    with pytest.warns(UserWarning, match="length of split at index 1 is 0"):
        D.random_split(Range(2), [0.9, 0.1])        # floors 1 and 0, remainder to the first


def test_random_split_without_generator_follows_the_global_seed():
    tg.manual_seed(3)
    first = [list(s.indices) for s in D.random_split(Range(20), [0.5, 0.5])]
    tg.manual_seed(3)
    assert [list(s.indices) for s in D.random_split(Range(20), [0.5, 0.5])] == first


# --------------------------------------------------------------------------- random samplers: properties
def test_random_sampler_without_replacement_is_a_new_permutation_each_pass():
    sampler = D.RandomSampler(Range(50), generator=np.random.default_rng(0))
    first, second = list(sampler), list(sampler)
    assert sorted(first) == list(range(50)) and sorted(second) == list(range(50)) and first != second
    assert len(sampler) == 50


def test_random_sampler_num_samples_beyond_n_repeats_whole_permutations():
    drawn = list(D.RandomSampler(Range(4), num_samples=10, generator=np.random.default_rng(1)))
    assert len(drawn) == 10
    assert sorted(drawn[:4]) == sorted(drawn[4:8]) == [0, 1, 2, 3] and len(set(drawn[8:])) == 2


def test_random_sampler_with_replacement_is_uniform():
    drawn = list(D.RandomSampler(Range(4), replacement=True, num_samples=40000, generator=np.random.default_rng(2)))
    counts = np.bincount(drawn, minlength=4)
    assert counts.sum() == 40000 and np.all(np.abs(counts / 40000 - 0.25) < 0.01)   # ~6 standard errors


def test_subset_random_sampler_permutes_the_given_indices():
    sampler = D.SubsetRandomSampler([5, 9, 2, 7], generator=np.random.default_rng(0))
    passes = [tuple(sampler) for _ in range(20)]
    assert all(sorted(p) == [2, 5, 7, 9] for p in passes) and len(set(passes)) > 1 and len(sampler) == 4


def test_weighted_random_sampler_draws_in_proportion_to_weights():
    weights = [1.0, 3.0, 0.0, 6.0]
    drawn = list(D.WeightedRandomSampler(weights, 50000, generator=np.random.default_rng(0)))
    frequencies = np.bincount(drawn, minlength=4) / 50000
    np.testing.assert_allclose(frequencies, np.array(weights) / 10, atol=0.01)
    without = list(D.WeightedRandomSampler(weights, 3, replacement=False, generator=np.random.default_rng(1)))
    assert sorted(without) == [0, 1, 3]                      # each positive weight once, the zero never


def test_weighted_sampling_without_replacement_renormalises_as_torch_multinomial():
    # P(first draw = 0) = 1/10 and P(second = 0 | first = 3) = 1/4: P(0 in the first two) is, by hand,
    # 0.1 + 0.3 * 1/7 + 0.6 * 1/4 = 0.29286
    rng = np.random.default_rng(5)
    sampler = D.WeightedRandomSampler([1.0, 3.0, 6.0], 2, replacement=False, generator=rng)
    hits = sum(0 in list(sampler) for _ in range(20000)) / 20000
    assert abs(hits - (0.1 + 0.3 / 7 + 0.6 / 4)) < 0.01


def test_random_samplers_match_torch_in_distribution():
    torch = pytest.importorskip("torch")
    from torch.utils.data import WeightedRandomSampler
    weights = [1.0, 3.0, 6.0]
    theirs = np.bincount(list(WeightedRandomSampler(weights, 30000, generator=torch.Generator().manual_seed(0))),
                         minlength=3) / 30000
    ours = np.bincount(list(D.WeightedRandomSampler(weights, 30000, generator=np.random.default_rng(0))),
                       minlength=3) / 30000
    np.testing.assert_allclose(ours, theirs, atol=0.015)


# --------------------------------------------------------------------------- with a DataLoader
def test_loader_with_a_batch_sampler_takes_its_batches():
    batch_sampler = D.BatchSampler(D.SequentialSampler(range(7)), 3, drop_last=False)
    loader = D.DataLoader(Range(7, start=10), batch_sampler=batch_sampler)
    assert loader.batch_size is None and len(loader) == 3
    assert [b.tolist() for b in loader] == [[10, 11, 12], [13, 14, 15], [16]]


@pytest.mark.parametrize("option", [{"batch_size": 2}, {"shuffle": True}, {"drop_last": True},
                                    {"sampler": D.SequentialSampler(range(7))}])
def test_batch_sampler_excludes_the_batching_options(option):
    with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive with batch_size, shuffle"):
        D.DataLoader(Range(7), batch_sampler=D.BatchSampler(range(7), 3, False), **option)


def test_loader_with_a_random_sampler_covers_the_dataset():
    loader = D.DataLoader(Range(9), batch_size=4, sampler=D.RandomSampler(Range(9), generator=np.random.default_rng(0)))
    values = np.concatenate([b.numpy() for b in loader])
    assert len(loader) == 3 and sorted(values.tolist()) == list(range(9))


def test_loader_over_subsets_and_concat_of_tuples():
    Pair = namedtuple("Pair", "x y")
    data = D.ConcatDataset([[Pair(np.full(2, i, np.float32), i) for i in range(3)],
                            [Pair(np.full(2, i, np.float32), i) for i in range(3, 5)]])
    train, valid = D.random_split(data, [0.6, 0.4], generator=np.random.default_rng(0))
    batch = next(iter(D.DataLoader(train, batch_size=3)))
    assert isinstance(batch, Pair) and batch.x.shape == (3, 2) and batch.y.dtype == np.int64
    np.testing.assert_array_equal(batch.x.numpy()[:, 0], batch.y.numpy())
    assert math.isclose(len(train) / len(data), 0.6) and len(valid) == 2
    valid_ys = D.DataLoader(valid, batch_size=2).one_batch().y.tolist()
    assert sorted(valid_ys + [train[i].y for i in range(3)]) == [0, 1, 2, 3, 4]
