"""The package version, in a module of its own so that anything can import it without cycles."""

__version__ = "0.2.0"
