"""endpoint-agent: a privacy-first endpoint scanning agent."""

__all__ = ["__version__"]

__version__ = "0.1.0"
