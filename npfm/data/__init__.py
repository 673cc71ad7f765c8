"""Data sets made from what is installed: no downloads, ever."""
