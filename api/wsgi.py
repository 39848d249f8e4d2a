"""WSGI entry for gunicorn: ``gunicorn -w 4 'api.wsgi:app'`` (settings from the environment)."""

from api.app import create_app

app = create_app()
