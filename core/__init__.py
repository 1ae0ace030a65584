"""edgetrim's engine: plain Python, no UI imports (the dashboard and the CLI both drive it)."""
__version__ = "0.1.0"
