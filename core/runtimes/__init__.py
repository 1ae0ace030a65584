"""Runtimes: one module per runtime (write a file, score it, time it, say why not), measurement, the .etz archive."""
