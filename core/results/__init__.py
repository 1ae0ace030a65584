"""Results: the store of points and their kept files, Pareto fronts and picks, words for numbers, verified export."""
