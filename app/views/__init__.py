"""The dashboard's views, one module each, shown as tabs in this order.

A view module provides ``TAB`` (its label), ``ID`` (the tab value),
``layout(runs, cache)`` (its controls and figures, given the runs found in
the cache at page load) and ``register(app, cache)`` (its
callbacks, thin wrappers around plain functions that take run paths and
control values and return figures; ``analyses/bench_app.py`` times those
functions).  To add a view (e.g. attention drift over decoding steps, issue
6), write such a module and append it to :data:`VIEWS`.
"""

from modbias_app.views import causal, drift, heads, interventions, layers, runs, samples, tokens

VIEWS = (runs, heads, layers, tokens, interventions, samples, drift, causal)
