"""The merchant HTTP API (FastAPI): ``create_app(settings)`` is its composition root."""
