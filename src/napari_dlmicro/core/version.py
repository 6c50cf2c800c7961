"""The package's version, in the core so that headless code (model export) can name it; pyproject reads it here."""

__version__ = "0.2.0"
