"""The uWSGI entry point: ``module = app.wsgi:application``."""

from app import create_app

application = create_app()
