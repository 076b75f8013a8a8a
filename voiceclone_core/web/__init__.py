"""Web door: enrollment page and JSON API."""
