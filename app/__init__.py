"""modbias_app: the Dash dashboard over the run stores in ``cache/`` (reads stores, never runs a model).

>>> from modbias_app import create_app, serve          # doctest: +SKIP
>>> serve("cache", port=8050)                           # http://127.0.0.1:8050
"""

from modbias_app.dashboard import create_app, serve

__all__ = ["create_app", "serve"]
