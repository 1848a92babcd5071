"""Clients of bidhall: ``web/`` holds the browser pages, ``python/`` the client library."""
