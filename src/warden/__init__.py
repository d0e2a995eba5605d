"""Warden: machine-to-machine identity built on the OAuth 2.0 client credentials grant."""

__version__ = "0.1.0"
__all__ = ["__version__"]
