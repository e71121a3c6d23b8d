"""Tools that write the files under `data/` (`make sample-catalog`). Not part of the
pipeline: nothing in `core/` or `defs/` imports them."""
