"""Thin adapters: readers, id maps, HDF5 stores, atomic writes."""
