"""Private implementation of :mod:`harness.otdd`; import the public names from there."""
