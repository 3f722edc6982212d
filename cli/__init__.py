"""The tickstore command line, on top of the stages."""
