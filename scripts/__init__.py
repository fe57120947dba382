"""Thin command-line wrappers around functions of the facecam package."""
