"""Serving stage (online store, Flask scoring API): see the Serving issue."""
