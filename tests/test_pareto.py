import pytest

from lanas.pareto import dominates, hypervolume, pareto_mask


def test_front_is_the_non_dominated_set():
    pts = [(0.9, 10.0), (0.95, 12.0), (0.85, 11.0), (0.9, 9.0), (0.96, 20.0)]
    mask = pareto_mask(pts)
    assert mask == [False, True, False, True, True]
    front = [p for p, m in zip(pts, mask) if m]
    assert not any(dominates(a, b) for a in front for b in front)
    assert all(any(dominates(f, p) for f in front) for p, m in zip(pts, mask) if not m)


def test_hypervolume_of_known_shapes():
    assert hypervolume([(1.0, 0.0)], (0.0, 1.0)) == pytest.approx(1.0)
    # two-step staircase: (0.5 x 1) + (0.5 x 0.5) beyond the reference (0, 1) ... explicit sum
    assert hypervolume([(0.5, 0.0), (1.0, 0.5)], (0.0, 1.0)) == pytest.approx(0.5 * 0.5 + 0.5 * 1.0)
    # dominated and out-of-reference points add nothing
    assert hypervolume([(0.5, 0.0), (0.4, 0.2), (2.0, 5.0)], (0.0, 1.0)) == pytest.approx(0.5)
    assert hypervolume([], (0.0, 1.0)) == 0.0
