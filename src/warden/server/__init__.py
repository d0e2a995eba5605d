"""ASGI application: routing, parsing, rendering and the endpoints (kept thin)."""
