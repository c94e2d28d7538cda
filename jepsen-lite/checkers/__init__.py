"""Checkers over histories: linearizability (linear.py), Elle-style
dependency cycles (elle.py), and the set, watch, lock and lease checks of
their workloads."""
