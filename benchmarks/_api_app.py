"""The app ``benchmarks/api.py`` serves: the API as deployed (``api.wsgi``, settings from the
environment) plus its baseline, a trivial endpoint on the same server.

    python -m gunicorn -w 4 benchmarks._api_app:app
"""

from __future__ import annotations

from api.wsgi import app

app.add_url_rule("/bench/noop", "noop", lambda: {"ok": True})
