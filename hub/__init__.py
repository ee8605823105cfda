"""The hub: a service-desk partner-exchange and integration hub."""

__all__ = ["__version__"]

__version__ = "0.1.0"
